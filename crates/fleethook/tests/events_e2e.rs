//! Diagnostics (v3.0) and vehicle-state (v4.0) webhooks end to end: changes ingested through
//! the API reach a real receiver as SPEC section 5 describes them, key order included, and
//! Smartcar's Python SDK accepts their signatures.

mod common;

use common::*;
use serde_json::{json, Value};

fn keys(value: &Value) -> Vec<&str> {
    value
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect()
}

async fn event_webhook(
    server: &TestServer,
    receiver: &mut Receiver,
    event: &str,
    path: &str,
) -> String {
    let body = json!({"name": event, "type":"eventBased","callbackUri": receiver.url(path),"events":[event]});
    let (status, created) = server.call("POST", "/api/v1/webhooks", Some(body)).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_string();
    let (status, _) = server
        .call("POST", &format!("/api/v1/webhooks/{id}/verify"), None)
        .await;
    assert_eq!(status, 200);
    receiver.next().await;
    id
}

fn dtcs(codes: &[(&str, &str)]) -> Value {
    let values: Vec<Value> = codes
        .iter()
        .map(|(c, t)| json!({"code": c, "timestamp": t}))
        .collect();
    json!([{"code":"diagnostics-dtclist","body":{"values": values}}])
}

#[tokio::test]
async fn trouble_codes_that_become_active_or_clear_are_delivered_as_the_full_active_set() {
    let server = TestServer::start().await;
    let mut receiver = Receiver::start(Some(&server.token)).await;
    let vehicle = server.vehicle().await;
    let vehicle_id = vehicle["id"].as_str().unwrap();
    let id = event_webhook(
        &server,
        &mut receiver,
        "DIAGNOSTIC_TROUBLE_CODES",
        "/ok/dtc",
    )
    .await;
    server.subscribe(&vehicle, &id).await;
    let mut signed = Vec::new();

    // Each step: the active codes ingested, and the set the event must carry (None: no event).
    type Step<'a> = (Vec<(&'a str, &'a str)>, Option<Vec<&'a str>>);
    let steps: Vec<Step> = vec![
        (vec![("P0300", "2024-09-05T14:48:00Z")], Some(vec!["P0300"])),
        (
            vec![
                ("P0300", "2024-09-05T14:48:00Z"),
                ("P0420", "2024-09-06T08:00:00.000Z"),
            ],
            Some(vec!["P0300", "P0420"]),
        ),
        // The same set in another order is not a change.
        (
            vec![
                ("P0420", "2024-09-06T08:00:00.000Z"),
                ("P0300", "2024-09-05T14:48:00Z"),
            ],
            None,
        ),
        (
            vec![("P0420", "2024-09-06T08:00:00.000Z")],
            Some(vec!["P0420"]),
        ),
        (vec![], Some(vec![])),
    ];
    for (codes, expected) in steps {
        server.ingest(vehicle_id, dtcs(&codes)).await;
        let sent = server.run_due().await;
        let Some(expected) = expected else {
            assert_eq!(sent, 0, "no event for an unchanged set");
            receiver.assert_quiet();
            continue;
        };
        assert_eq!(sent, 1);
        let got = receiver.next().await;
        assert!(sc_signature_ok(&got, &server.token));
        signed.push((got.header("sc-signature").to_string(), got.body.clone()));
        let payload = got.json();
        assert_eq!(
            keys(&payload),
            [
                "version",
                "webhookId",
                "deliveryId",
                "deliveryTime",
                "mode",
                "type",
                "data"
            ]
        );
        assert_eq!(payload["version"], "3.0");
        assert_eq!(payload["type"], "EVENT_DELIVERY");
        assert_eq!(payload["mode"], "live");
        assert_eq!(payload["webhookId"], id.as_str());
        assert!(
            payload["deliveryTime"].as_str().unwrap().ends_with(".000Z")
                || payload["deliveryTime"].as_str().unwrap().ends_with('Z')
        );
        let events = payload["data"]["events"].as_array().unwrap();
        assert_eq!(events.len(), 1);
        let event = &events[0];
        assert_eq!(
            keys(event),
            [
                "eventId",
                "vehicleId",
                "userId",
                "eventTime",
                "eventType",
                "codes"
            ]
        );
        assert_eq!(event["vehicleId"], vehicle_id);
        assert_eq!(event["userId"], vehicle["userId"]);
        assert_eq!(event["eventType"], "DIAGNOSTIC_TROUBLE_CODES");
        let got_codes: Vec<&str> = event["codes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["code"].as_str().unwrap())
            .collect();
        let mut sorted = got_codes.clone();
        sorted.sort();
        assert_eq!(sorted, expected);
        for c in event["codes"].as_array().unwrap() {
            assert_eq!(keys(c), ["code", "timestamp"]);
            let ts = c["timestamp"].as_str().unwrap();
            assert!(
                ts.len() == 24 && ts.ends_with('Z'),
                "ISO with milliseconds: {ts}"
            );
        }
    }
    let verdicts = sdk_verify_payloads(&server.token, signed).await;
    assert!(
        verdicts.iter().all(|ok| *ok),
        "Smartcar's SDK rejected a signature: {verdicts:?}"
    );
}

#[tokio::test]
async fn systems_going_from_ok_to_alert_and_back_are_delivered_with_their_system_ids() {
    let server = TestServer::start().await;
    let mut receiver = Receiver::start(Some(&server.token)).await;
    let vehicle = server.vehicle().await;
    let vehicle_id = vehicle["id"].as_str().unwrap();
    let id = event_webhook(
        &server,
        &mut receiver,
        "DIAGNOSTIC_SYSTEM_ALERTS",
        "/ok/alerts",
    )
    .await;
    server.subscribe(&vehicle, &id).await;
    let tpms = |status: &str, description: &str| json!([{"code":"diagnostics-tirepressuremonitoring","body":{"status":status,"description":description}}]);
    // A system first seen OK is no event.
    server
        .ingest(vehicle_id, tpms("OK", "All sensors normal"))
        .await;
    assert_eq!(server.run_due().await, 0);
    server
        .ingest(
            vehicle_id,
            tpms("ALERT", "Left rear tire sensor battery low"),
        )
        .await;
    assert_eq!(server.run_due().await, 1);
    let payload = receiver.next().await.json();
    let event = &payload["data"]["events"][0];
    assert_eq!(
        keys(event),
        [
            "eventId",
            "vehicleId",
            "userId",
            "eventTime",
            "eventType",
            "alerts"
        ]
    );
    assert_eq!(event["eventType"], "DIAGNOSTIC_SYSTEM_ALERTS");
    assert_eq!(
        event["alerts"],
        json!([{"systemId":"SYSTEM_TPMS","status":"ALERT","description":"Left rear tire sensor battery low"}])
    );
    // A new description with the same status is no event.
    server
        .ingest(
            vehicle_id,
            tpms("ALERT", "Left rear tire sensor battery very low"),
        )
        .await;
    assert_eq!(server.run_due().await, 0);
    // Two systems changing in one ingest share one event.
    server
        .ingest(
            vehicle_id,
            json!([
                {"code":"diagnostics-tirepressuremonitoring","body":{"status":"OK","description":"All sensors normal"}},
                {"code":"diagnostics-abs","body":{"status":"ALERT","description":"ABS fault"}}
            ]),
        )
        .await;
    assert_eq!(server.run_due().await, 1);
    let alerts = receiver.next().await.json()["data"]["events"][0]["alerts"].clone();
    let mut systems: Vec<(String, String)> = alerts
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["systemId"].as_str().unwrap().to_string(),
                a["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    systems.sort();
    assert_eq!(
        systems,
        [
            ("SYSTEM_ABS".to_string(), "ALERT".to_string()),
            ("SYSTEM_TPMS".to_string(), "OK".to_string())
        ]
    );
}

async fn vehicle_state_first_delivery_trigger_changes_errors_and_unsubscribe(backend: Backend) {
    let server = TestServer::start_on(backend).await;
    let mut receiver = Receiver::start(Some(&server.token)).await;
    let vehicle = server.vehicle().await;
    let vehicle_id = vehicle["id"].as_str().unwrap();
    server
        .ingest(
            vehicle_id,
            json!([
                {"code":"tractionbattery-stateofcharge","body":{"unit":"percent","value":78},"oemUpdatedAt":1731940328000_i64},
                {"code":"location-preciselocation","body":{"latitude":37.77,"longitude":-122.42,"heading":0,"direction":"N","locationType":"CURRENT"}}
            ]),
        )
        .await;
    let body = json!({"name":"state","type":"vehicleState","callbackUri": receiver.url("/ok/state"),
        "errorCallbackUri": receiver.url("/ok/errors"),
        "triggers":["tractionbattery-stateofcharge","charge-ischargingcableconnected"],
        "data":["location-preciselocation","location-isathome"]});
    let (_, created) = server.call("POST", "/api/v1/webhooks", Some(body)).await;
    let id = created["id"].as_str().unwrap().to_string();
    server
        .call("POST", &format!("/api/v1/webhooks/{id}/verify"), None)
        .await;
    receiver.next().await;
    let mut signed = Vec::new();

    // Subscribing sends the first delivery with every configured signal, triggers then data;
    // signals the vehicle cannot supply carry an error, and an error goes to the error callback.
    server.subscribe(&vehicle, &id).await;
    assert_eq!(server.run_due().await, 2);
    let mut first = receiver.next().await;
    let mut error = receiver.next().await;
    if first.path == "/ok/errors" {
        std::mem::swap(&mut first, &mut error);
    }
    signed.push((first.header("sc-signature").to_string(), first.body.clone()));
    let payload = first.json();
    assert_eq!(
        keys(&payload),
        [
            "eventId",
            "eventType",
            "vehicleId",
            "data",
            "triggers",
            "meta"
        ]
    );
    assert_eq!(payload["eventType"], "VEHICLE_STATE");
    assert_eq!(payload["triggers"], json!([{"type":"FIRST_DELIVERY"}]));
    assert_eq!(keys(&payload["data"]), ["user", "vehicle", "signals"]);
    assert_eq!(payload["data"]["user"], json!({"id": vehicle["userId"]}));
    assert_eq!(
        payload["data"]["vehicle"],
        json!({"id": vehicle_id, "make":"TESLA","model":"Model 3","year":2020})
    );
    let codes: Vec<&str> = payload["data"]["signals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["code"].as_str().unwrap())
        .collect();
    assert_eq!(
        codes,
        [
            "tractionbattery-stateofcharge",
            "charge-ischargingcableconnected",
            "location-preciselocation",
            "location-isathome"
        ]
    );
    let soc = &payload["data"]["signals"][0];
    assert_eq!(
        keys(soc),
        ["code", "name", "group", "body", "meta", "status"]
    );
    assert_eq!(soc["name"], "StateOfCharge");
    assert_eq!(soc["group"], "TractionBattery");
    assert_eq!(soc["body"], json!({"unit":"percent","value":78}));
    assert_eq!(soc["meta"]["oemUpdatedAt"], 1731940328000_i64);
    assert_eq!(soc["status"], json!({"value":"SUCCESS"}));
    assert_eq!(
        payload["data"]["signals"][3]["status"],
        json!({"value":"ERROR","error":{"type":"COMPATIBILITY","code":"VEHICLE_NOT_CAPABLE"}})
    );
    assert_eq!(
        keys(&payload["meta"]),
        [
            "version",
            "webhookId",
            "webhookName",
            "deliveryId",
            "deliveredAt",
            "mode",
            "signalCount"
        ]
    );
    assert_eq!(payload["meta"]["mode"], "LIVE");
    assert_eq!(payload["meta"]["signalCount"], 4);
    let error_payload = error.json();
    assert_eq!(error.path, "/ok/errors");
    assert_eq!(error_payload["eventType"], "VEHICLE_ERROR");
    assert_eq!(error_payload["data"]["errors"][0]["type"], "COMPATIBILITY");
    assert_eq!(
        error_payload["data"]["errors"][0]["code"],
        "VEHICLE_NOT_CAPABLE"
    );
    assert_eq!(error_payload["data"]["errors"][0]["state"], "ERROR");
    signed.push((error.header("sc-signature").to_string(), error.body.clone()));

    // A data-only change sends nothing; a trigger change sends every signal.
    server
        .ingest(vehicle_id, json!([{"code":"location-preciselocation","body":{"latitude":37.78,"longitude":-122.41,"heading":0,"direction":"N","locationType":"CURRENT"}}]))
        .await;
    assert_eq!(server.run_due().await, 0);
    server
        .ingest(
            vehicle_id,
            json!([{"code":"tractionbattery-stateofcharge","body":{"unit":"percent","value":77}}]),
        )
        .await;
    assert_eq!(server.run_due().await, 1);
    let changed = receiver.next().await;
    signed.push((
        changed.header("sc-signature").to_string(),
        changed.body.clone(),
    ));
    let payload = changed.json();
    assert_eq!(
        payload["triggers"],
        json!([{"type":"SIGNAL_UPDATED","signal":{"code":"tractionbattery-stateofcharge","name":"StateOfCharge","group":"TractionBattery"}}])
    );
    assert_eq!(payload["data"]["signals"][0]["body"]["value"], 77);
    assert_eq!(payload["data"]["signals"][2]["body"]["latitude"], 37.78);

    // An error from the source goes to the error callback, and again as RESOLVED when it clears.
    let ingest_errors = |errors: Value| {
        let server = &server;
        async move {
            let (status, body) = server
                .call(
                    "POST",
                    &format!("/api/v1/vehicles/{vehicle_id}/signals"),
                    Some(json!({ "errors": errors })),
                )
                .await;
            assert_eq!(status, 202, "{body}");
        }
    };
    ingest_errors(json!([{"type":"CONNECTED_SERVICES_ACCOUNT","code":"AUTHENTICATION_FAILED","description":"The owner's credentials expired."}])).await;
    assert_eq!(server.run_due().await, 1);
    let raised = receiver.next().await;
    assert_eq!(raised.path, "/ok/errors");
    let entry = &raised.json()["data"]["errors"][0];
    assert_eq!(
        keys(entry),
        [
            "type",
            "code",
            "state",
            "description",
            "suggestedUserMessage",
            "docURL",
            "resolution",
            "signals"
        ]
    );
    assert_eq!(
        (entry["code"].as_str(), entry["state"].as_str()),
        (Some("AUTHENTICATION_FAILED"), Some("ERROR"))
    );
    ingest_errors(json!([])).await;
    assert_eq!(server.run_due().await, 1);
    let resolved = receiver.next().await;
    let entry = &resolved.json()["data"]["errors"][0];
    assert_eq!(
        (entry["code"].as_str(), entry["state"].as_str()),
        (Some("AUTHENTICATION_FAILED"), Some("RESOLVED"))
    );
    signed.push((
        resolved.header("sc-signature").to_string(),
        resolved.body.clone(),
    ));

    // Disabling and enabling again sends the first delivery again.
    server
        .call("POST", &format!("/api/v1/webhooks/{id}/disable"), None)
        .await;
    server
        .call("POST", &format!("/api/v1/webhooks/{id}/enable"), None)
        .await;
    assert_eq!(server.run_due().await, 2);
    let mut again = [receiver.next().await, receiver.next().await];
    again.sort_by(|a, b| a.path.cmp(&b.path));
    assert_eq!(
        again[1].json()["triggers"],
        json!([{"type":"FIRST_DELIVERY"}])
    );

    // Unsubscribing stops delivery at once.
    let (status, _) = server
        .call(
            "DELETE",
            &format!("/v2.0/vehicles/{vehicle_id}/webhooks/{id}"),
            None,
        )
        .await;
    assert_eq!(status, 200);
    server
        .ingest(
            vehicle_id,
            json!([{"code":"tractionbattery-stateofcharge","body":{"unit":"percent","value":50}}]),
        )
        .await;
    assert_eq!(server.run_due().await, 0);
    receiver.assert_quiet();

    let verdicts = sdk_verify_payloads(&server.token, signed).await;
    assert!(
        verdicts.iter().all(|ok| *ok),
        "Smartcar's SDK rejected a signature: {verdicts:?}"
    );
}

/// Random interleavings of concurrent ingests on one vehicle: the deliveries are exactly those
/// a sequential model predicts for the order the store applied them in, which each ingest's
/// answer reveals (it reports whether its value was a change).
async fn racing_ingests_neither_lose_nor_double_a_change(backend: Backend) {
    use rand::{Rng, SeedableRng};
    let server = TestServer::start_on(backend).await;
    let mut receiver = Receiver::start(Some(&server.token)).await;
    let vehicle = server.vehicle().await;
    let vehicle_id = vehicle["id"].as_str().unwrap().to_string();
    let body = json!({"name":"race","type":"vehicleState","callbackUri": receiver.url("/ok/race"),
        "triggers":["tractionbattery-stateofcharge"]});
    let (_, created) = server.call("POST", "/api/v1/webhooks", Some(body)).await;
    let id = created["id"].as_str().unwrap().to_string();
    server
        .call("POST", &format!("/api/v1/webhooks/{id}/verify"), None)
        .await;
    receiver.next().await;
    server
        .ingest(
            &vehicle_id,
            json!([{"code":"tractionbattery-stateofcharge","body":{"unit":"percent","value":0}}]),
        )
        .await;
    server.subscribe(&vehicle, &id).await;
    assert_eq!(server.run_due().await, 1);
    receiver.next().await; // first delivery

    for seed in 0..5u64 {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let values: Vec<i64> = (0..24).map(|_| rng.gen_range(0..3) * 10 + 10).collect();
        let tasks: Vec<_> = values
            .iter()
            .map(|value| {
                let (http, url, token) = (server.http.clone(), server.url(&format!("/api/v1/vehicles/{vehicle_id}/signals")), server.token.clone());
                let value = *value;
                tokio::spawn(async move {
                    let answer: Value = http
                        .post(url)
                        .bearer_auth(token)
                        .json(&json!({"signals":[{"code":"tractionbattery-stateofcharge","body":{"unit":"percent","value":value}}]}))
                        .send()
                        .await
                        .unwrap()
                        .json()
                        .await
                        .unwrap();
                    (value, !answer["changed"].as_array().unwrap().is_empty())
                })
            })
            .collect();
        let mut reported = Vec::new();
        for task in tasks {
            let (value, changed) = task.await.unwrap();
            if changed {
                reported.push(value);
            }
        }
        let sent = server.run_due().await;
        let mut delivered = Vec::new();
        for _ in 0..sent {
            let payload = receiver.next().await.json();
            assert_eq!(payload["triggers"][0]["type"], "SIGNAL_UPDATED");
            delivered.push(
                payload["data"]["signals"][0]["body"]["value"]
                    .as_i64()
                    .unwrap(),
            );
        }
        receiver.assert_quiet();
        // One delivery per reported change, carrying that change's value: none lost, none
        // doubled. In the store's serial order no two consecutive changes carry the same
        // value, so the number of changes is at least the distinct values changed to, minus
        // the value it started from, and at most the number of ingests.
        reported.sort();
        delivered.sort();
        assert_eq!(delivered, reported, "seed {seed}");
        assert!(reported.len() <= values.len());
    }
}

on_both_stores!(
    vehicle_state_first_delivery_trigger_changes_errors_and_unsubscribe,
    racing_ingests_neither_lose_nor_double_a_change,
);
