//! `fleethook demo`: the five-minute experience. A server on a temporary database with a
//! simulated fleet, a built-in receiver that checks every signature and prints one line per
//! delivery, and one webhook of each kind subscribed to the fleet, verified and enabled, on
//! an accelerated clock.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use clap::Args;
use fleethook_wire::signing::{hash_challenge, standard, verify_sc_signature};
use serde_json::{json, Value};

use crate::clock::{Clock, ScaledClock};
use crate::server::{ensure_default_app, open_store, RunningServer, ServerOptions};
use crate::simulation::Simulation;

/// Options of `fleethook demo`.
#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// HTTP listen address of the server.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// Simulated vehicles in the fleet.
    #[arg(long, default_value_t = 12)]
    pub vehicles: u32,
    /// Speed of the platform clock (300: an hour passes in 12 seconds).
    #[arg(long, default_value_t = 300.0)]
    pub time_scale: f64,
    /// Stop after this many seconds (default: run until Ctrl-C).
    #[arg(long)]
    pub seconds: Option<u64>,
}

/// What the built-in receiver needs to check signatures.
#[derive(Clone)]
struct ReceiverState {
    amt: String,
    /// Webhook id → (kind label, signing secret).
    webhooks: Arc<Mutex<HashMap<String, (String, String)>>>,
}

/// Runs the demo until Ctrl-C or `--seconds`.
pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    if !(args.time_scale.is_finite() && args.time_scale > 0.0) {
        bail!("--time-scale must be a positive number");
    }
    let dir = DemoDir::new()?;
    let store = open_store(&format!("sqlite://{}", dir.0.join("demo.db").display())).await?;
    let clock = Arc::new(ScaledClock::new(args.time_scale));
    let (app, _) = ensure_default_app(&store, None, clock.now_ms()).await?;

    let receiver = ReceiverState {
        amt: app.management_token.clone(),
        webhooks: Arc::new(Mutex::new(HashMap::new())),
    };
    let receiver_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let receiver_url = format!("http://{}", receiver_listener.local_addr()?);
    let receiver_app = Router::new()
        .route("/{kind}", post(receive))
        .with_state(receiver.clone());
    tokio::spawn(async move {
        let _ = axum::serve(receiver_listener, receiver_app).await;
    });

    let server = RunningServer::start(
        store,
        clock,
        ServerOptions {
            listen: args.listen.clone(),
            allow_private: true,
            dispatcher: Default::default(),
            background_dispatcher: true,
        },
    )
    .await?;
    let simulation = Simulation::start(server.state.clone(), &app, args.vehicles).await?;
    // One step now, so every vehicle has its signals before it is subscribed.
    simulation.step().await?;
    tokio::spawn(simulation.clone().run(server.shutdown_receiver()));

    let base = server.url();
    let api = reqwest::Client::new();
    let call = |method: reqwest::Method, path: String, body: Option<Value>| {
        let mut request = api
            .request(method, format!("{base}{path}"))
            .bearer_auth(&app.management_token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        async move {
            let response = request.send().await?;
            let status = response.status();
            let value: Value = response.json().await.unwrap_or(Value::Null);
            if !status.is_success() {
                bail!("{path} answered {status}: {value}");
            }
            anyhow::Ok(value)
        }
    };
    let kinds = [
        (
            "scheduled",
            json!({"schedule":{"frequency":"hourly","interval":1},"endpoints":["/battery","/location","/odometer"],"units":"metric"}),
        ),
        ("dynamic", json!({})),
        (
            "diagnostics",
            json!({"events":["DIAGNOSTIC_TROUBLE_CODES"]}),
        ),
        ("alerts", json!({"events":["DIAGNOSTIC_SYSTEM_ALERTS"]})),
        (
            "vehicleState",
            json!({"triggers":["charge-ischargingcableconnected","transmission-gearstate"],"data":["tractionbattery-stateofcharge","location-preciselocation","odometer-traveleddistance"]}),
        ),
    ];
    let mut webhook_ids = Vec::new();
    for (label, fields) in kinds {
        let kind = match label {
            "diagnostics" | "alerts" => "eventBased",
            other => other,
        };
        let mut body = json!({"name": format!("demo {label}"), "type": kind, "callbackUri": format!("{receiver_url}/{label}")});
        for (k, v) in fields.as_object().into_iter().flatten() {
            body[k] = v.clone();
        }
        let created = call(reqwest::Method::POST, "/api/v1/webhooks".into(), Some(body)).await?;
        let id = created["id"].as_str().context("webhook id")?.to_string();
        let secret = created["signingSecret"]
            .as_str()
            .context("signing secret")?
            .to_string();
        receiver
            .webhooks
            .lock()
            .map_err(|_| anyhow::anyhow!("receiver state poisoned"))?
            .insert(id.clone(), (label.to_string(), secret));
        call(
            reqwest::Method::POST,
            format!("/api/v1/webhooks/{id}/verify"),
            None,
        )
        .await?;
        webhook_ids.push(id);
    }
    let (vehicles, _) = server
        .state
        .store
        .list_vehicles(
            &app.id,
            None,
            crate::model::Page {
                limit: 1000,
                offset: 0,
            },
        )
        .await?;
    println!(
        "fleethook demo: {} simulated vehicles, clock at {}x real time",
        vehicles.len(),
        args.time_scale
    );
    println!("  dashboard:         {base}/   (sign in with the management token below)");
    println!("  API:               {base}   (every endpoint: {base}/openapi.json)");
    println!("  management token:  {}", app.management_token);
    println!("  receiver:          {receiver_url} (checks SC-Signature and webhook-signature on every delivery)");
    println!("  webhooks: scheduled (hourly), dynamic, eventBased (trouble codes, system alerts), vehicleState");
    println!("Deliveries as they arrive:");

    for vehicle in &vehicles {
        for id in &webhook_ids {
            let url = format!("{base}/v2.0/vehicles/{}/webhooks/{id}", vehicle.id);
            let response = api
                .post(url)
                .bearer_auth(&vehicle.access_token)
                .send()
                .await?;
            if !response.status().is_success() {
                bail!("subscribing {} answered {}", vehicle.id, response.status());
            }
        }
    }

    match args.seconds {
        Some(seconds) => tokio::time::sleep(Duration::from_secs(seconds)).await,
        None => {
            tokio::signal::ctrl_c().await?;
        }
    }
    server.stop().await;
    drop(dir);
    Ok(())
}

/// The demo's database folder, removed when the demo ends.
struct DemoDir(PathBuf);

impl DemoDir {
    fn new() -> anyhow::Result<Self> {
        let dir = std::env::temp_dir().join(format!("fleethook-demo-{}", std::process::id()));
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        Ok(DemoDir(dir))
    }
}

impl Drop for DemoDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The built-in receiver: answers challenges, checks both signatures of every delivery, and
/// prints one line for it.
async fn receive(
    State(state): State<ReceiverState>,
    axum::extract::Path(label): axum::extract::Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Ok(payload) = serde_json::from_slice::<Value>(&body) else {
        println!("  ✗ {label}: a body that is not JSON");
        return StatusCode::BAD_REQUEST.into_response();
    };
    let challenge = payload["payload"]["challenge"]
        .as_str()
        .or_else(|| payload["data"]["challenge"].as_str());
    if let Some(challenge) = challenge {
        return Json(json!({ "challenge": hash_challenge(&state.amt, challenge) })).into_response();
    }
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    };
    let sc_ok = verify_sc_signature(&state.amt, &body, header("sc-signature"));
    let webhook_id = payload["webhookId"]
        .as_str()
        .or_else(|| payload["meta"]["webhookId"].as_str())
        .unwrap_or("");
    let secret = state
        .webhooks
        .lock()
        .ok()
        .and_then(|w| w.get(webhook_id).map(|(_, s)| s.clone()));
    let timestamp: i64 = header("webhook-timestamp").parse().unwrap_or(0);
    let std_ok = secret.is_some_and(|s| {
        standard::verify(
            &s,
            header("webhook-id"),
            timestamp,
            &body,
            header("webhook-signature"),
        )
    });
    let mark = if sc_ok && std_ok {
        "✓ signed"
    } else {
        "✗ BAD SIGNATURE"
    };
    println!("  {} {}", describe(&label, &payload), mark);
    if sc_ok && std_ok {
        StatusCode::OK.into_response()
    } else {
        StatusCode::UNAUTHORIZED.into_response()
    }
}

/// One readable line: kind, vehicles, key values.
pub fn describe(label: &str, payload: &Value) -> String {
    match payload["version"].as_str() {
        Some("2.0") => {
            let vehicles = payload["payload"]["vehicles"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let first = vehicles.first().cloned().unwrap_or(Value::Null);
            let mut values = Vec::new();
            for item in first["data"].as_array().into_iter().flatten() {
                let body = &item["body"];
                match item["path"].as_str() {
                    Some("/battery") if item["code"] == 200 => values.push(format!(
                        "battery {:.0}% {:.0} km",
                        body["percentRemaining"].as_f64().unwrap_or(0.0) * 100.0,
                        body["range"].as_f64().unwrap_or(0.0)
                    )),
                    Some("/charge") if item["code"] == 200 => {
                        values.push(format!("charge {}", body["state"].as_str().unwrap_or("?")))
                    }
                    Some("/location") if item["code"] == 200 => values.push(format!(
                        "at {:.4},{:.4}",
                        body["latitude"].as_f64().unwrap_or(0.0),
                        body["longitude"].as_f64().unwrap_or(0.0)
                    )),
                    Some("/odometer") if item["code"] == 200 => values.push(format!(
                        "odometer {:.0} km",
                        body["distance"].as_f64().unwrap_or(0.0)
                    )),
                    Some(path) if item["code"] != 200 => values.push(format!("{path} not capable")),
                    _ => {}
                }
            }
            format!(
                "{:<13} {:>2} vehicle(s)  first: {}",
                payload["eventName"].as_str().unwrap_or(label),
                vehicles.len(),
                values.join(", ")
            )
        }
        Some("3.0") => {
            let event = &payload["data"]["events"][0];
            let detail = match event["eventType"].as_str() {
                Some("DIAGNOSTIC_TROUBLE_CODES") => {
                    let codes: Vec<&str> = event["codes"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|c| c["code"].as_str())
                        .collect();
                    format!("trouble codes now [{}]", codes.join(", "))
                }
                _ => {
                    let alerts: Vec<String> = event["alerts"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|a| {
                            format!(
                                "{} {}",
                                a["systemId"].as_str().unwrap_or("?"),
                                a["status"].as_str().unwrap_or("?")
                            )
                        })
                        .collect();
                    format!("systems {}", alerts.join(", "))
                }
            };
            format!(
                "{:<13} vehicle {}  {detail}",
                "eventBased",
                short(&event["vehicleId"])
            )
        }
        _ => {
            let event_type = payload["eventType"].as_str().unwrap_or("?");
            let detail = if event_type == "VEHICLE_ERROR" {
                let errors: Vec<String> = payload["data"]["errors"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|e| {
                        format!(
                            "{} {}",
                            e["code"].as_str().unwrap_or("?"),
                            e["state"].as_str().unwrap_or("?")
                        )
                    })
                    .collect();
                format!("error {}", errors.join(", "))
            } else {
                let triggers: Vec<String> = payload["triggers"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|t| {
                        t["signal"]["code"]
                            .as_str()
                            .map(str::to_string)
                            .unwrap_or_else(|| t["type"].as_str().unwrap_or("?").to_string())
                    })
                    .collect();
                format!(
                    "{} signals, because {}",
                    payload["meta"]["signalCount"],
                    triggers.join(", ")
                )
            };
            format!(
                "{:<13} vehicle {}  {detail}",
                "vehicleState",
                short(&payload["vehicleId"])
            )
        }
    }
}

fn short(id: &Value) -> String {
    id.as_str()
        .unwrap_or("?")
        .chars()
        .rev()
        .take(6)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect()
}
