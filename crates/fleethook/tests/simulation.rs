//! The simulator runner: the fleet is created once however often the server starts, its data
//! goes through the ingest road (so the vehicle API and webhooks see it), and its payloads say
//! they are simulated.

mod common;

use common::*;
use fleethook::simulation::Simulation;
use serde_json::{json, Value};

#[tokio::test]
async fn the_simulated_fleet_is_created_once_and_feeds_the_api_and_webhooks() {
    let server = TestServer::start().await;
    let mut receiver = Receiver::start(Some(&server.token)).await;
    let app = server
        .server
        .state
        .store
        .app_by_token(&server.token)
        .await
        .unwrap()
        .unwrap();
    Simulation::start(server.server.state.clone(), &app, 5)
        .await
        .unwrap();
    Simulation::start(server.server.state.clone(), &app, 5)
        .await
        .unwrap();
    let (_, list) = server.call("GET", "/api/v1/vehicles", None).await;
    let vehicles = list["vehicles"].as_array().unwrap().clone();
    assert_eq!(
        vehicles.len(),
        5,
        "starting twice must not create the fleet twice"
    );
    assert!(vehicles
        .iter()
        .all(|v| v["mode"] == "simulated" && v["simulated"] == true));

    // A vehicle created with `simulate: true` is adopted too.
    let (status, adopted) = server
        .call(
            "POST",
            "/api/v1/vehicles",
            Some(json!({"make":"KIA","model":"EV6","year":2023,"simulate":true})),
        )
        .await;
    assert_eq!(status, 201);
    assert_eq!(adopted["mode"], "simulated");
    // A new start models every simulated vehicle in the store, the adopted one included.
    let simulation = Simulation::start(server.server.state.clone(), &app, 5)
        .await
        .unwrap();
    assert_eq!(
        simulation.step().await.unwrap(),
        6,
        "every simulated vehicle reports its first snapshot"
    );

    // Its data reads back through the vehicle API.
    let (_, one) = server
        .call(
            "GET",
            &format!("/api/v1/vehicles/{}", adopted["id"].as_str().unwrap()),
            None,
        )
        .await;
    let codes: Vec<&str> = one["signals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["code"].as_str().unwrap())
        .collect();
    assert!(
        codes.contains(&"tractionbattery-stateofcharge"),
        "{codes:?}"
    );
    assert!(codes.contains(&"location-preciselocation"), "{codes:?}");

    // And reaches a scheduled webhook with mode "simulated".
    let body = json!({"name":"fleet","type":"scheduled","callbackUri": receiver.url("/ok/fleet"),
        "schedule":{"frequency":"hourly"},"endpoints":["/location","/odometer"]});
    let (_, created) = server.call("POST", "/api/v1/webhooks", Some(body)).await;
    let id = created["id"].as_str().unwrap();
    server
        .call("POST", &format!("/api/v1/webhooks/{id}/verify"), None)
        .await;
    receiver.next().await;
    for vehicle in &vehicles {
        let (_, full) = server
            .call(
                "GET",
                &format!("/api/v1/vehicles/{}", vehicle["id"].as_str().unwrap()),
                None,
            )
            .await;
        assert!(!full["signals"].as_array().unwrap().is_empty());
    }
    let (_, list) = server.call("GET", "/api/v1/vehicles?limit=100", None).await;
    let mut subscribed = 0;
    for vehicle in list["vehicles"].as_array().unwrap() {
        // Management listings carry no tokens; subscribe through the store like the API does.
        let v = server
            .server
            .state
            .store
            .vehicle(&app.id, vehicle["id"].as_str().unwrap())
            .await
            .unwrap()
            .unwrap();
        server
            .subscribe(&json!({"id": v.id, "accessToken": v.access_token}), id)
            .await;
        subscribed += 1;
    }
    server.clock.set(T0 + 15 * 60 * 1000);
    simulation.step().await.unwrap();
    assert_eq!(server.run_due().await, 1);
    let payload: Value = receiver.next().await.json();
    assert_eq!(payload["mode"], "simulated");
    assert_eq!(
        payload["payload"]["vehicles"].as_array().unwrap().len(),
        subscribed
    );
}
