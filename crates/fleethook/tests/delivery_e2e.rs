//! End to end through a real receiver on 127.0.0.1: verification, test payloads of every kind
//! with signatures checked by independent code, the retry roads on a manual clock, 410,
//! redirects, the SSRF guard, and fairness between a dead and a healthy endpoint.

mod common;

use common::*;
use fleethook::clock::Clock;
use serde_json::Value;

const KINDS: [&str; 4] = ["scheduled", "dynamic", "eventBased", "vehicleState"];

fn millis(iso: &Value) -> i64 {
    chrono::DateTime::parse_from_rfc3339(iso.as_str().expect("a time"))
        .unwrap()
        .timestamp_millis()
}

async fn verification_passes_with_the_right_hmac_and_enables_the_webhook(backend: Backend) {
    let server = TestServer::start_on(backend).await;
    let mut receiver = Receiver::start(Some(&server.token)).await;
    for kind in KINDS {
        let hook = server.webhook(kind, &receiver.url("/ok/verify")).await;
        assert_eq!(hook["status"], "unverified");
        let id = hook["id"].as_str().unwrap();
        let (status, body) = server
            .call("POST", &format!("/api/v1/webhooks/{id}/verify"), None)
            .await;
        assert_eq!(
            (status, &body["verified"]),
            (200, &Value::Bool(true)),
            "{kind}: {body}"
        );
        let got = receiver.next().await;
        assert!(sc_signature_ok(&got, &server.token), "{kind}: SC-Signature");
        let payload = got.json();
        if kind == "vehicleState" {
            assert_eq!(payload["eventType"], "VERIFY");
            assert_eq!(payload["meta"]["version"], "4.0");
            assert_eq!(payload["meta"]["webhookId"], id);
            assert!(payload["data"]["challenge"].is_string());
        } else {
            let keys: Vec<&String> = payload.as_object().unwrap().keys().collect();
            assert_eq!(
                keys,
                ["version", "webhookId", "eventName", "payload"],
                "{kind}"
            );
            assert_eq!(payload["version"], "2.0");
            assert_eq!(payload["eventName"], "verify");
        }
        let (_, after) = server
            .call("GET", &format!("/api/v1/webhooks/{id}"), None)
            .await;
        assert_eq!(after["status"], "enabled", "{kind}");
    }
}

#[tokio::test]
async fn a_wrong_answer_fails_verification_with_reason_expected_and_received() {
    let server = TestServer::start().await;
    let mut receiver = Receiver::start(Some(&server.token)).await;
    let hook = server
        .webhook("dynamic", &receiver.url("/wrong-challenge"))
        .await;
    let id = hook["id"].as_str().unwrap();
    let (status, body) = server
        .call("POST", &format!("/api/v1/webhooks/{id}/verify"), None)
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["verified"], false);
    let got = receiver.next().await;
    let challenge = got.json()["payload"]["challenge"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        body["expected"],
        hmac_hex(&server.token, challenge.as_bytes())
    );
    assert!(
        body["received"].as_str().unwrap().contains(&"0".repeat(64)),
        "{body}"
    );
    assert!(
        body["reason"].as_str().unwrap().contains("challenge"),
        "{body}"
    );
    let (_, after) = server
        .call("GET", &format!("/api/v1/webhooks/{id}"), None)
        .await;
    assert_eq!(after["status"], "unverified");

    // A receiver that answers 500 fails too, and says so.
    let hook = server
        .webhook("dynamic", &receiver.url("/status/500"))
        .await;
    let id = hook["id"].as_str().unwrap();
    let (status, body) = server
        .call("POST", &format!("/api/v1/webhooks/{id}/verify"), None)
        .await;
    assert_eq!(status, 422, "{body}");
    assert!(body["reason"].as_str().unwrap().contains("500"), "{body}");
}

async fn test_payloads_of_every_kind_arrive_signed_and_compact(backend: Backend) {
    let server = TestServer::start_on(backend).await;
    let mut receiver = Receiver::start(Some(&server.token)).await;
    for kind in KINDS {
        let hook = server
            .enabled_webhook(kind, &receiver.url(&format!("/ok/{kind}")))
            .await;
        receiver.next().await; // the challenge
        let id = hook["id"].as_str().unwrap();
        let secret = hook["signingSecret"].as_str().unwrap();
        let (status, body) = server
            .call("POST", &format!("/api/v1/webhooks/{id}/test"), None)
            .await;
        assert_eq!(status, 202, "{body}");
        assert_eq!(server.run_due().await, 1);
        let got = receiver.next().await;
        assert!(sc_signature_ok(&got, &server.token), "{kind}: SC-Signature");
        assert!(
            standard_signature_ok(&got, secret),
            "{kind}: webhook-signature"
        );
        assert_eq!(got.header("content-type"), "application/json");
        assert!(got.header("user-agent").starts_with("fleethook/"));
        // Node's SDK verifies JSON.stringify(JSON.parse(body)): the body must be compact and
        // round-trip to the same bytes.
        let reparsed = serde_json::to_string(&got.json()).unwrap();
        assert_eq!(reparsed, got.body, "{kind}");
        let payload = got.json();
        match kind {
            "scheduled" | "dynamic" => {
                assert_eq!(payload["version"], "2.0");
                assert_eq!(payload["eventName"], kind);
                assert_eq!(payload["mode"], "test");
                let data = &payload["payload"]["vehicles"][0]["data"];
                let paths: Vec<&str> = data
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|d| d["path"].as_str().unwrap())
                    .collect();
                let expected: &[&str] = if kind == "scheduled" {
                    &["/battery", "/location"]
                } else {
                    &["/battery", "/charge", "/location"]
                };
                assert_eq!(paths, expected, "{kind}");
            }
            "eventBased" => {
                assert_eq!(payload["version"], "3.0");
                assert_eq!(payload["type"], "EVENT_DELIVERY");
                assert_eq!(payload["mode"], "test");
                assert_eq!(
                    payload["data"]["events"][0]["eventType"],
                    "DIAGNOSTIC_TROUBLE_CODES"
                );
            }
            _ => {
                assert_eq!(payload["eventType"], "VEHICLE_STATE");
                assert_eq!(payload["meta"]["mode"], "TEST");
                assert_eq!(payload["meta"]["webhookId"], id);
                let codes: Vec<&str> = payload["data"]["signals"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|s| s["code"].as_str().unwrap())
                    .collect();
                assert_eq!(
                    codes,
                    ["tractionbattery-stateofcharge", "location-preciselocation"]
                );
                assert_eq!(payload["meta"]["signalCount"], 2);
            }
        }
        let delivery_id = body["deliveryId"].as_str().unwrap();
        let delivery = server.delivery(delivery_id).await;
        assert_eq!(delivery["status"], "succeeded");
        assert_eq!(delivery["attempts"][0]["statusCode"], 200);
    }
}

/// Sends one test payload to a webhook whose receiver keeps failing and follows every retry
/// on the manual clock; returns the planned waits seen (ms) and the final webhook.
async fn follow_retries(backend: Backend, kind: &str, planned: &[i64]) -> (Vec<i64>, Value) {
    let server = TestServer::start_on(backend).await;
    let mut receiver = Receiver::start(Some(&server.token)).await;
    let hook = server
        .enabled_webhook(kind, &receiver.url("/ok/failing"))
        .await;
    receiver.next().await;
    receiver.set_status("/ok/failing", 500);
    let id = hook["id"].as_str().unwrap();
    let (_, body) = server
        .call("POST", &format!("/api/v1/webhooks/{id}/test"), None)
        .await;
    let delivery_id = body["deliveryId"].as_str().unwrap().to_string();
    assert_eq!(server.run_due().await, 1);
    receiver.next().await;
    let mut waits = Vec::new();
    let mut last_attempt_at = server.clock.now_ms();
    let event_id = server.delivery(&delivery_id).await["eventId"].clone();
    for (i, plan) in planned.iter().enumerate() {
        let delivery = server.delivery(&delivery_id).await;
        assert_eq!(delivery["status"], "pending", "retry {i}: {delivery}");
        assert_eq!(delivery["eventId"], event_id);
        let next = millis(&delivery["nextAttemptAt"]);
        let wait = next - last_attempt_at;
        assert!(
            (wait as f64) >= *plan as f64 * 0.9 - 1.0 && (wait as f64) <= *plan as f64 * 1.1 + 1.0,
            "retry {i}: waited {wait} ms, planned {plan} ms ± 10 %"
        );
        waits.push(wait);
        // Just before the retry is due nothing goes out; at the due time exactly one attempt.
        assert_eq!(
            server.advance_to(next - 1).await,
            0,
            "retry {i} went out early"
        );
        receiver.assert_quiet();
        assert_eq!(server.advance_to(next).await, 1, "retry {i} did not go out");
        let got = receiver.next().await;
        assert_eq!(
            got.header("webhook-id"),
            event_id.as_str().unwrap(),
            "stable webhook-id"
        );
        last_attempt_at = next;
    }
    let delivery = server.delivery(&delivery_id).await;
    assert_eq!(delivery["status"], "failed", "{delivery}");
    assert_eq!(delivery["attemptCount"], planned.len() as i64 + 1);
    // Nothing more, however long we wait.
    assert_eq!(
        server.advance_to(server.clock.now_ms() + 3_600_000).await,
        0
    );
    receiver.assert_quiet();
    let (_, webhook) = server
        .call("GET", &format!("/api/v1/webhooks/{id}"), None)
        .await;
    (waits, webhook)
}

async fn a_failing_scheduled_receiver_sees_the_exact_retry_road_then_the_webhook_is_disabled(
    backend: Backend,
) {
    let (_, webhook) = follow_retries(
        backend,
        "scheduled",
        &[20_000, 40_000, 80_000, 160_000, 300_000],
    )
    .await;
    assert_eq!(webhook["status"], "disabled");
    assert!(
        webhook["disabledReason"].as_str().unwrap().contains("500"),
        "{webhook}"
    );
}

async fn dynamic_and_event_based_retry_six_times_doubling_from_10_s_then_disable(backend: Backend) {
    for kind in ["dynamic", "eventBased"] {
        let (_, webhook) = follow_retries(
            backend,
            kind,
            &[10_000, 20_000, 40_000, 80_000, 160_000, 320_000],
        )
        .await;
        assert_eq!(webhook["status"], "disabled", "{kind}");
    }
}

async fn vehicle_state_retries_three_times_then_drops_the_event_and_stays_enabled(
    backend: Backend,
) {
    let (_, webhook) = follow_retries(backend, "vehicleState", &[25_000, 50_000, 100_000]).await;
    assert_eq!(webhook["status"], "enabled");
}

async fn a_410_disables_the_webhook_at_once(backend: Backend) {
    let server = TestServer::start_on(backend).await;
    let mut receiver = Receiver::start(Some(&server.token)).await;
    let hook = server
        .enabled_webhook("dynamic", &receiver.url("/ok/gone"))
        .await;
    receiver.next().await;
    receiver.set_status("/ok/gone", 410);
    let id = hook["id"].as_str().unwrap();
    let (_, body) = server
        .call("POST", &format!("/api/v1/webhooks/{id}/test"), None)
        .await;
    server.run_due().await;
    receiver.next().await;
    let delivery = server.delivery(body["deliveryId"].as_str().unwrap()).await;
    assert_eq!(delivery["status"], "failed");
    let (_, webhook) = server
        .call("GET", &format!("/api/v1/webhooks/{id}"), None)
        .await;
    assert_eq!(webhook["status"], "disabled");
    assert!(
        webhook["disabledReason"].as_str().unwrap().contains("410"),
        "{webhook}"
    );
    // A disabled webhook gets no test payloads.
    let (status, _) = server
        .call("POST", &format!("/api/v1/webhooks/{id}/test"), None)
        .await;
    assert_eq!(status, 409);
}

#[tokio::test]
async fn a_redirect_is_a_failure_and_is_not_followed() {
    let server = TestServer::start().await;
    let mut receiver = Receiver::start(Some(&server.token)).await;
    let hook = server
        .enabled_webhook("vehicleState", &receiver.url("/ok/moved"))
        .await;
    receiver.next().await;
    receiver.set_status("/ok/moved", 302);
    let id = hook["id"].as_str().unwrap();
    let (_, body) = server
        .call("POST", &format!("/api/v1/webhooks/{id}/test"), None)
        .await;
    server.run_due().await;
    assert_eq!(receiver.next().await.path, "/ok/moved");
    receiver.assert_quiet(); // nothing followed the redirect
    let delivery = server.delivery(body["deliveryId"].as_str().unwrap()).await;
    assert_eq!(delivery["status"], "pending", "{delivery}");
    assert_eq!(delivery["attempts"][0]["statusCode"], 302);
}

#[tokio::test]
async fn callbacks_on_loopback_are_refused_without_the_allow_flag() {
    let server = TestServer::start_with(false).await;
    let mut receiver = Receiver::start(Some(&server.token)).await;
    // An IP literal is refused when the webhook is created.
    let (status, body) = server
        .call(
            "POST",
            "/api/v1/webhooks",
            Some(serde_json::json!({"name":"x","type":"dynamic","callbackUri": receiver.url("/ok/x")})),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["description"]
            .as_str()
            .unwrap()
            .contains("callbackUri"),
        "{body}"
    );
    // `localhost` by name is refused when the webhook is created too.
    let port = receiver.base.rsplit(':').next().unwrap().to_string();
    let (status, body) = server
        .call(
            "POST",
            "/api/v1/webhooks",
            Some(serde_json::json!({"name":"x","type":"dynamic","callbackUri": format!("http://localhost:{port}/ok/x")})),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    // Any other name is judged at connect time, on the address actually connected to. This
    // machine's own host name resolves to a loopback or private address.
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_string();
    let resolved: Vec<std::net::SocketAddr> = tokio::net::lookup_host((host.as_str(), 80))
        .await
        .unwrap()
        .collect();
    assert!(
        resolved
            .iter()
            .all(|a| fleethook::delivery::http::is_forbidden_ip(a.ip())),
        "this test needs the host name {host} to resolve to a private address: {resolved:?}"
    );
    let hook = server
        .webhook("dynamic", &format!("http://{host}:{port}/ok/x"))
        .await;
    let id = hook["id"].as_str().unwrap();
    let (status, body) = server
        .call("POST", &format!("/api/v1/webhooks/{id}/verify"), None)
        .await;
    assert_eq!(status, 422, "{body}");
    receiver.assert_quiet();
}

async fn a_hanging_endpoint_does_not_hold_up_a_healthy_one(backend: Backend) {
    let server = TestServer::start_live_on(backend).await;
    let mut receiver = Receiver::start(Some(&server.token)).await;
    let slow = server
        .enabled_webhook("dynamic", &receiver.url("/ok/slow"))
        .await;
    receiver.next().await;
    let fast = server
        .enabled_webhook("dynamic", &receiver.url("/ok/fast"))
        .await;
    receiver.next().await;
    receiver.set_status("/ok/slow", HANG);
    let slow_id = slow["id"].as_str().unwrap();
    let fast_id = fast["id"].as_str().unwrap();
    for _ in 0..40 {
        server
            .call("POST", &format!("/api/v1/webhooks/{slow_id}/test"), None)
            .await;
    }
    for _ in 0..5 {
        server
            .call("POST", &format!("/api/v1/webhooks/{fast_id}/test"), None)
            .await;
    }
    let mut fast_seen = 0;
    while fast_seen < 5 {
        if receiver.next().await.path == "/ok/fast" {
            fast_seen += 1;
        }
    }
    // Every healthy delivery arrived while the slow endpoint still holds its attempts open:
    // none of the slow ones has finished an attempt yet.
    let (_, log) = server
        .call(
            "GET",
            &format!("/api/v1/webhooks/{slow_id}/deliveries?limit=100"),
            None,
        )
        .await;
    let finished = log["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["purpose"] == "test" && d["attemptCount"].as_i64() != Some(0))
        .count();
    assert_eq!(
        finished, 0,
        "slow attempts finished before the healthy ones were delivered"
    );
}

async fn a_manual_retry_is_one_attempt_that_can_revive_a_failed_delivery(backend: Backend) {
    let server = TestServer::start_on(backend).await;
    let mut receiver = Receiver::start(Some(&server.token)).await;
    let hook = server
        .enabled_webhook("vehicleState", &receiver.url("/ok/manual"))
        .await;
    receiver.next().await;
    receiver.set_status("/ok/manual", 503);
    let id = hook["id"].as_str().unwrap();
    let (_, body) = server
        .call("POST", &format!("/api/v1/webhooks/{id}/test"), None)
        .await;
    let delivery_id = body["deliveryId"].as_str().unwrap();
    server.run_due().await;
    receiver.next().await;
    // While it is pending, the retry road is the dispatcher's.
    let (status, answer) = server
        .call(
            "POST",
            &format!("/api/v1/deliveries/{delivery_id}/retry"),
            None,
        )
        .await;
    assert_eq!(status, 409, "{answer}");
    for _ in 0..3 {
        let next = millis(&server.delivery(delivery_id).await["nextAttemptAt"]);
        assert_eq!(server.advance_to(next).await, 1);
        receiver.next().await;
    }
    assert_eq!(server.delivery(delivery_id).await["status"], "failed");

    receiver.set_status("/ok/manual", 200);
    let (status, after) = server
        .call(
            "POST",
            &format!("/api/v1/deliveries/{delivery_id}/retry"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{after}");
    assert_eq!(after["status"], "succeeded");
    assert_eq!(after["attemptCount"], 5);
    let got = receiver.next().await;
    receiver.assert_quiet();
    // The event keeps its id; the v4 deliveryId is new for this attempt.
    let payload = got.json();
    assert_eq!(got.header("webhook-id"), after["eventId"].as_str().unwrap());
    assert_eq!(payload["eventId"], after["eventId"]);
    let wire_ids: Vec<&Value> = after["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| &a["deliveryId"])
        .collect();
    assert_eq!(payload["meta"]["deliveryId"], *wire_ids[4]);
    let unique: std::collections::HashSet<String> =
        wire_ids.iter().map(|v| v.to_string()).collect();
    assert_eq!(unique.len(), 5, "every attempt carries its own deliveryId");
}

on_both_stores!(
    verification_passes_with_the_right_hmac_and_enables_the_webhook,
    test_payloads_of_every_kind_arrive_signed_and_compact,
    a_failing_scheduled_receiver_sees_the_exact_retry_road_then_the_webhook_is_disabled,
    dynamic_and_event_based_retry_six_times_doubling_from_10_s_then_disable,
    vehicle_state_retries_three_times_then_drops_the_event_and_stays_enabled,
    a_410_disables_the_webhook_at_once,
    a_hanging_endpoint_does_not_hold_up_a_healthy_one,
    a_manual_retry_is_one_attempt_that_can_revive_a_failed_delivery,
);
