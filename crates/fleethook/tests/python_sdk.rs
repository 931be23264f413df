//! Smartcar's own Python SDK (PyPI `smartcar`, unchanged) against a real fleethook server:
//! vehicles, battery, location, attributes, units, subscribe, unsubscribe, errors, and its
//! `hash_challenge` / `verify_payload` on what fleethook actually sent.

mod common;

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use common::*;
use serde_json::{json, Value};

#[tokio::test]
async fn smartcars_python_sdk_works_unchanged_against_fleethook() {
    let python = tokio::task::spawn_blocking(common::sdk_python)
        .await
        .unwrap();
    let server = TestServer::start().await;
    let mut receiver = Receiver::start(Some(&server.token)).await;
    let vehicle = server.vehicle().await;
    let vehicle_id = vehicle["id"].as_str().unwrap();
    let access_token = vehicle["accessToken"].as_str().unwrap();
    let (status, _) = server
        .call(
            "POST",
            &format!("/api/v1/vehicles/{vehicle_id}/signals"),
            Some(json!({"signals":[
                {"code":"tractionbattery-stateofcharge","body":{"unit":"percent","value":58}},
                {"code":"tractionbattery-range","body":{"unit":"kilometers","value":283.2}},
                {"code":"location-preciselocation","body":{"latitude":37.7749,"longitude":-122.4194,"heading":0,"direction":"N","locationType":"CURRENT"}}
            ]})),
        )
        .await;
    assert_eq!(status, 202);

    // A real delivery for the SDK to check: the challenge and a signed test payload.
    let hook = server
        .enabled_webhook("dynamic", &receiver.url("/ok/sdk"))
        .await;
    let challenge_delivery = receiver.next().await;
    let challenge = challenge_delivery.json()["payload"]["challenge"]
        .as_str()
        .unwrap()
        .to_string();
    let webhook_id = hook["id"].as_str().unwrap();
    server
        .call("POST", &format!("/api/v1/webhooks/{webhook_id}/test"), None)
        .await;
    server.run_due().await;
    let delivery = receiver.next().await;

    let input = json!({
        "accessToken": access_token,
        "vehicleId": vehicle_id,
        "webhookId": webhook_id,
        "amt": server.token,
        "challenge": challenge,
        "signature": delivery.header("sc-signature"),
        "body": delivery.body,
    });
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/sdk_check.py");
    let origin = server.server.url();
    let output = tokio::task::spawn_blocking(move || {
        let mut child = Command::new(python)
            .arg(script)
            .env("SMARTCAR_API_ORIGIN", &origin)
            .env("SMARTCAR_VEHICLE_API_V3_ORIGIN", &origin)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.to_string().as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap();
    assert!(
        output.status.success(),
        "the SDK script failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let out: Value = serde_json::from_slice(&output.stdout).unwrap();

    assert_eq!(out["vehicles"], json!([vehicle_id]));
    assert_eq!(out["paging"], json!({"count": 1, "offset": 0}));
    assert_eq!(out["battery"]["percentRemaining"], 0.58);
    assert_eq!(out["battery"]["range"], 283.2);
    assert_eq!(out["battery"]["unitSystem"], "metric");
    assert!(
        out["battery"]["dataAge"].as_str().unwrap().ends_with('Z'),
        "{out}"
    );
    assert!(out["battery"]["requestId"].is_string(), "{out}");
    let miles = out["batteryImperial"]["range"].as_f64().unwrap();
    assert!((miles - 283.2 / 1.609344).abs() < 0.01, "{miles}");
    assert_eq!(
        out["location"],
        json!({"latitude": 37.7749, "longitude": -122.4194})
    );
    assert_eq!(
        out["attributes"],
        json!({"id": vehicle_id, "make": "TESLA", "model": "Model 3", "year": 2020})
    );
    assert_eq!(
        out["subscribe"],
        json!({"webhookId": webhook_id, "vehicleId": vehicle_id})
    );
    assert_eq!(out["unsubscribe"], json!({"status": "success"}));
    assert_eq!(out["missing"]["statusCode"], 404, "{out}");
    assert_eq!(
        out["hashChallenge"],
        hmac_hex(&server.token, challenge.as_bytes())
    );
    assert_eq!(
        out["verifyPayload"], true,
        "the SDK rejected fleethook's SC-Signature"
    );
    assert_eq!(out["verifyTampered"], false);
    // Subscribe and unsubscribe really happened.
    let (_, subs) = server
        .call(
            "GET",
            &format!("/api/v1/webhooks/{webhook_id}/subscriptions"),
            None,
        )
        .await;
    assert_eq!(subs["vehicles"], json!([]));
}
