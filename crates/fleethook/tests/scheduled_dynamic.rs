//! Scheduled and dynamic webhooks end to end on a manual clock, through a real receiver:
//! boundaries in UTC, both unit systems agreeing with the vehicle API, batching under
//! `maxPayloadBytes`, a restart over a boundary, and the dynamic cadence.

mod common;

use std::collections::HashMap;

use common::*;
use serde_json::{json, Value};

/// 2024-09-20T16:00:00Z, the first hourly boundary after T0 (15:45).
const SIXTEEN: i64 = T0 + 15 * 60 * 1000;
const HOUR: i64 = 3_600_000;

fn ev_signals(soc: f64, range_km: f64, lat: f64, plugged: bool) -> Value {
    json!([
        {"code":"tractionbattery-stateofcharge","body":{"unit":"percent","value":soc}},
        {"code":"tractionbattery-range","body":{"unit":"kilometers","value":range_km}},
        {"code":"location-preciselocation","body":{"latitude":lat,"longitude":-122.4194,"heading":90,"direction":"E","locationType":"CURRENT"}},
        {"code":"odometer-traveleddistance","body":{"unit":"kilometers","value":12345.6}},
        {"code":"charge-ischargingcableconnected","body":{"value":plugged}},
        {"code":"charge-detailedchargingstatus","body":{"value": if plugged {"CHARGING"} else {"NOT_CHARGING"}}}
    ])
}

async fn scheduled_webhook(server: &TestServer, receiver: &mut Receiver, body: Value) -> String {
    let (status, created) = server.call("POST", "/api/v1/webhooks", Some(body)).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_string();
    let (status, verified) = server
        .call("POST", &format!("/api/v1/webhooks/{id}/verify"), None)
        .await;
    assert_eq!(status, 200, "{verified}");
    receiver.next().await;
    id
}

async fn hourly_webhook_delivers_at_the_next_utc_boundary_in_both_unit_systems_matching_the_vehicle_api(
    backend: Backend,
) {
    let server = TestServer::start_on(backend).await;
    let mut receiver = Receiver::start(Some(&server.token)).await;
    let vehicle = server.vehicle().await;
    let vehicle_id = vehicle["id"].as_str().unwrap();
    server
        .ingest(vehicle_id, ev_signals(58.0, 283.2, 37.7749, false))
        .await;
    let mut hooks = HashMap::new();
    for units in ["metric", "imperial"] {
        let body = json!({"name": units, "type":"scheduled","callbackUri": receiver.url(&format!("/ok/{units}")),
                   "schedule":{"frequency":"hourly","interval":1},"endpoints":["/battery","/odometer","/location","/fuel"],"units":units});
        let id = scheduled_webhook(&server, &mut receiver, body).await;
        server.subscribe(&vehicle, &id).await;
        hooks.insert(units, id);
    }
    // Subscribed at 15:45: nothing until 16:00.
    assert_eq!(server.advance_to(SIXTEEN - 1).await, 0);
    receiver.assert_quiet();
    assert_eq!(server.advance_to(SIXTEEN).await, 2);
    let mut got = HashMap::new();
    for _ in 0..2 {
        let r = receiver.next().await;
        assert!(sc_signature_ok(&r, &server.token));
        got.insert(r.path.trim_start_matches("/ok/").to_string(), r.json());
    }
    for units in ["metric", "imperial"] {
        let payload = &got[units];
        let keys: Vec<&String> = payload.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            ["version", "webhookId", "eventName", "mode", "payload"]
        );
        assert_eq!(payload["eventName"], "scheduled");
        assert_eq!(payload["mode"], "live");
        assert_eq!(payload["webhookId"], hooks[units].as_str());
        let vehicles = payload["payload"]["vehicles"].as_array().unwrap();
        assert_eq!(vehicles.len(), 1);
        assert_eq!(vehicles[0]["vehicleId"], vehicle_id);
        let data = vehicles[0]["data"].as_array().unwrap();
        let paths: Vec<&str> = data.iter().map(|d| d["path"].as_str().unwrap()).collect();
        assert_eq!(paths, ["/battery", "/odometer", "/location", "/fuel"]);
        // The same numbers as the vehicle API gives for the same vehicle and units.
        for item in &data[..3] {
            let path = item["path"].as_str().unwrap();
            let response = server
                .http
                .get(server.url(&format!("/v2.0/vehicles/{vehicle_id}{path}")))
                .bearer_auth(vehicle["accessToken"].as_str().unwrap())
                .header("sc-unit-system", units)
                .send()
                .await
                .unwrap();
            assert_eq!(response.headers()["sc-unit-system"], units);
            let body: Value = response.json().await.unwrap();
            assert_eq!(item["code"], 200, "{units} {path}");
            assert_eq!(item["body"], body, "{units} {path}");
            assert_eq!(item["headers"]["sc-unit-system"], units);
        }
        // A path the vehicle cannot answer is an error item, not a missing item.
        assert_eq!(data[3]["code"], 501);
        assert_eq!(data[3]["body"]["code"], "VEHICLE_NOT_CAPABLE");
        assert_eq!(data[3]["headers"], json!({}));
    }
    let metric_range = got["metric"]["payload"]["vehicles"][0]["data"][0]["body"]["range"]
        .as_f64()
        .unwrap();
    let imperial_range = got["imperial"]["payload"]["vehicles"][0]["data"][0]["body"]["range"]
        .as_f64()
        .unwrap();
    assert_eq!(metric_range, 283.2);
    assert!(
        (imperial_range - 283.2 / 1.609344).abs() < 0.01,
        "{imperial_range}"
    );
    // And again exactly one hour later, not before.
    assert_eq!(server.advance_to(SIXTEEN + HOUR - 1).await, 0);
    assert_eq!(server.advance_to(SIXTEEN + HOUR).await, 2);
}

async fn vehicles_due_together_are_batched_without_exceeding_max_payload_bytes(backend: Backend) {
    let server = TestServer::start_on(backend).await;
    let mut receiver = Receiver::start(Some(&server.token)).await;
    let body = json!({"name":"batch","type":"scheduled","callbackUri": receiver.url("/ok/batch"),"maxPayloadBytes": 4096,
               "schedule":{"frequency":"minutely","interval":15},"endpoints":["/battery","/location"]});
    let id = scheduled_webhook(&server, &mut receiver, body).await;
    let mut expected = std::collections::HashSet::new();
    for i in 0..40 {
        let vehicle = server.vehicle().await;
        let vehicle_id = vehicle["id"].as_str().unwrap().to_string();
        server
            .ingest(
                &vehicle_id,
                ev_signals(10.0 + i as f64, 100.0 + i as f64, 37.0, false),
            )
            .await;
        server.subscribe(&vehicle, &id).await;
        expected.insert(vehicle_id);
    }
    let bodies = server.advance_to(SIXTEEN).await;
    assert!(bodies > 1, "40 vehicles cannot fit one 4 KB body");
    let mut seen = std::collections::HashSet::new();
    for _ in 0..bodies {
        let r = receiver.next().await;
        assert!(r.body.len() <= 4096, "a body of {} bytes", r.body.len());
        for v in r.json()["payload"]["vehicles"].as_array().unwrap() {
            assert!(
                seen.insert(v["vehicleId"].as_str().unwrap().to_string()),
                "a vehicle twice"
            );
        }
    }
    assert_eq!(seen, expected);
    receiver.assert_quiet();
}

async fn a_boundary_missed_while_stopped_is_delivered_once_after_restart(backend: Backend) {
    let server = TestServer::start_on(backend).await;
    let mut receiver = Receiver::start(Some(&server.token)).await;
    let vehicle = server.vehicle().await;
    server
        .ingest(
            vehicle["id"].as_str().unwrap(),
            ev_signals(50.0, 200.0, 37.0, false),
        )
        .await;
    let body = json!({"name":"restart","type":"scheduled","callbackUri": receiver.url("/ok/restart"),
               "schedule":{"frequency":"hourly","interval":1},"endpoints":["/battery"]});
    let id = scheduled_webhook(&server, &mut receiver, body).await;
    server.subscribe(&vehicle, &id).await;
    // The process is down from 15:50 until 18:30: the 16:00, 17:00 and 18:00 boundaries pass.
    server.clock.set(T0 + 5 * 60 * 1000);
    let server = server.restart().await;
    server.clock.set(SIXTEEN + 2 * HOUR + 30 * 60 * 1000);
    assert_eq!(
        server.run_due().await,
        1,
        "the missed boundary is delivered once"
    );
    receiver.next().await;
    assert_eq!(server.run_due().await, 0);
    receiver.assert_quiet();
    // And the cadence goes on from there: 19:00.
    assert_eq!(server.advance_to(SIXTEEN + 3 * HOUR - 1).await, 0);
    assert_eq!(server.advance_to(SIXTEEN + 3 * HOUR).await, 1);
}

async fn dynamic_is_hourly_from_subscription_every_30_minutes_while_plugged_in_and_hourly_again_after(
    backend: Backend,
) {
    let server = TestServer::start_on(backend).await;
    let mut receiver = Receiver::start(Some(&server.token)).await;
    let vehicle = server.vehicle().await;
    let vehicle_id = vehicle["id"].as_str().unwrap().to_string();
    server
        .ingest(&vehicle_id, ev_signals(40.0, 150.0, 37.0, false))
        .await;
    let hook = server
        .enabled_webhook("dynamic", &receiver.url("/ok/dynamic"))
        .await;
    receiver.next().await;
    server
        .subscribe(&vehicle, hook["id"].as_str().unwrap())
        .await;
    let subscribed = T0;

    let mut times = Vec::new();
    // Walk the clock minute by minute for 5 hours, plugging in at 1:10 and unplugging at 3:10.
    let mut now = subscribed;
    while now < subscribed + 5 * HOUR {
        now += 60_000;
        server.clock.set(now);
        if now == subscribed + 70 * 60_000 {
            server
                .ingest(&vehicle_id, ev_signals(40.0, 150.0, 37.0, true))
                .await;
        }
        if now == subscribed + 190 * 60_000 {
            server
                .ingest(&vehicle_id, ev_signals(80.0, 300.0, 37.0, false))
                .await;
        }
        if server.run_due().await > 0 {
            let r = receiver.next().await;
            let payload = r.json();
            assert_eq!(payload["eventName"], "dynamic");
            let paths: Vec<&str> = payload["payload"]["vehicles"][0]["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d["path"].as_str().unwrap())
                .collect();
            assert_eq!(paths, ["/battery", "/charge", "/location"]);
            times.push((now - subscribed) / 60_000);
        }
    }
    // Minutes after subscription: 60; plugged in at 70 → at most 30 minutes later (100), then
    // every 30 (130, 160, 190); unplugged at 190 → hourly again (250).
    assert_eq!(times, [60, 100, 130, 160, 190, 250], "delivery minutes");
}

on_both_stores!(
    hourly_webhook_delivers_at_the_next_utc_boundary_in_both_unit_systems_matching_the_vehicle_api,
    vehicles_due_together_are_batched_without_exceeding_max_payload_bytes,
    a_boundary_missed_while_stopped_is_delivered_once_after_restart,
    dynamic_is_hourly_from_subscription_every_30_minutes_while_plugged_in_and_hourly_again_after,
);
