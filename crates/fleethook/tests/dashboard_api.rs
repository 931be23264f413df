//! What the dashboard stands on, through HTTP: its pages served by the binary with the right
//! content types and cache headers, the stats endpoint (counts from the store, validated
//! parameters, tenancy), the catalog, subscribing with the management token, a vehicle's
//! webhooks and deliveries, and the verification result with the challenge.

mod common;

use common::*;
use fleethook::model::App;
use serde_json::{json, Value};

async fn get_raw(server: &TestServer, path: &str, etag: Option<&str>) -> reqwest::Response {
    let mut request = server.http.get(server.url(path));
    if let Some(tag) = etag {
        request = request.header("if-none-match", tag);
    }
    request.send().await.unwrap()
}

fn header<'a>(response: &'a reqwest::Response, name: &str) -> &'a str {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

#[tokio::test]
async fn the_dashboard_is_served_by_the_binary_with_types_cache_headers_and_a_csp() {
    let server = TestServer::start().await;
    let page = get_raw(&server, "/", None).await;
    assert_eq!(page.status(), 200);
    assert_eq!(header(&page, "content-type"), "text/html; charset=utf-8");
    assert_eq!(header(&page, "cache-control"), "no-cache");
    assert!(header(&page, "content-security-policy").contains("script-src 'self'"));
    assert_eq!(header(&page, "x-content-type-options"), "nosniff");
    let etag = header(&page, "etag").to_string();
    assert!(etag.starts_with('"') && etag.len() == 18, "{etag}");
    let html = page.text().await.unwrap();

    let again = get_raw(&server, "/", Some(&etag)).await;
    assert_eq!(again.status(), 304, "an unchanged page costs a 304");

    // Every file the page and its modules name is served, with its type.
    let mut files: Vec<String> = html
        .split("/dashboard/")
        .skip(1)
        .map(|rest| rest.split('"').next().unwrap().to_string())
        .collect();
    let mut seen = Vec::new();
    while let Some(file) = files.pop() {
        if seen.contains(&file) {
            continue;
        }
        let answer = get_raw(&server, &format!("/dashboard/{file}"), None).await;
        assert_eq!(answer.status(), 200, "/dashboard/{file}");
        let expected = match file.rsplit('.').next() {
            Some("js") => "text/javascript; charset=utf-8",
            Some("css") => "text/css; charset=utf-8",
            Some("svg") => "image/svg+xml",
            other => panic!("unexpected asset type {other:?}"),
        };
        assert_eq!(header(&answer, "content-type"), expected, "{file}");
        let text = answer.text().await.unwrap();
        if file.ends_with(".js") {
            for import in text.split("from './").skip(1) {
                files.push(import.split('\'').next().unwrap().to_string());
            }
        }
        seen.push(file);
    }
    assert!(seen.len() >= 10, "{seen:?}");

    let missing = get_raw(&server, "/dashboard/nope.js", None).await;
    assert_eq!(missing.status(), 404);
    assert_eq!(header(&missing, "content-type"), "application/json");
}

#[tokio::test]
async fn stats_count_attempts_by_minute_outcome_and_latency_from_the_store() {
    let server = TestServer::start().await;
    let mut receiver = Receiver::start(Some(&server.token)).await;
    let ok = server
        .enabled_webhook("dynamic", &receiver.url("/ok/stats"))
        .await;
    let ok_id = ok["id"].as_str().unwrap();
    receiver.next().await;
    let broken = server
        .enabled_webhook("dynamic", &receiver.url("/ok/broken"))
        .await;
    let broken_id = broken["id"].as_str().unwrap();
    receiver.next().await;
    receiver.set_status("/ok/broken", 500);
    for id in [ok_id, broken_id] {
        let (status, body) = server
            .call("POST", &format!("/api/v1/webhooks/{id}/test"), None)
            .await;
        assert_eq!(status, 202, "{body}");
    }
    server.run_due().await;

    let (status, all) = server.call("GET", "/api/v1/stats?minutes=15", None).await;
    assert_eq!(status, 200, "{all}");
    assert_eq!(all["minutes"], 15);
    assert_eq!(
        all["series"].as_array().unwrap().len(),
        15,
        "a bar per minute"
    );
    // Two challenges and one test succeeded; one test failed and waits for its retry.
    assert_eq!(all["totals"]["succeeded"], 3, "{all}");
    assert_eq!(all["totals"]["retried"], 1, "{all}");
    assert_eq!(all["totals"]["failed"], 0, "{all}");
    let last = all["series"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["attempts"], 4, "the current minute holds them: {last}");
    assert!(last["p50"].is_number() && last["p99"].is_number(), "{last}");
    assert_eq!(all["series"][0]["attempts"], 0);
    assert_eq!(all["series"][0]["p50"], Value::Null);
    let rates: Vec<(String, Value)> = all["webhooks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            (
                w["webhookId"].as_str().unwrap().to_string(),
                w["successRate"].clone(),
            )
        })
        .collect();
    assert!(
        rates.contains(&(ok_id.to_string(), json!(1.0))),
        "{rates:?}"
    );
    assert!(
        rates.contains(&(broken_id.to_string(), json!(0.5))),
        "{rates:?}"
    );

    let (status, one) = server
        .call("GET", &format!("/api/v1/stats?webhookId={broken_id}"), None)
        .await;
    assert_eq!(status, 200, "{one}");
    assert_eq!(one["webhookId"], broken_id);
    assert_eq!(one["minutes"], 60, "the default window");
    assert_eq!(one["totals"]["attempts"], 2, "{one}");

    // The retry road ends in failure: the last attempt counts as failed, the first as retried.
    for _ in 0..6 {
        let next = server.server.state.store.next_due_at().await.unwrap();
        let Some(at) = next else { break };
        server.advance_to(at).await;
    }
    let (_, after) = server
        .call(
            "GET",
            &format!("/api/v1/stats?webhookId={broken_id}&minutes=360"),
            None,
        )
        .await;
    assert_eq!(after["totals"]["failed"], 1, "{after}");
    assert!(after["totals"]["retried"].as_i64().unwrap() >= 1, "{after}");
}

#[tokio::test]
async fn stats_refuse_bad_parameters_by_name_and_other_applications_webhooks() {
    let server = TestServer::start().await;
    let receiver = Receiver::start(Some(&server.token)).await;
    let hook = server.webhook("dynamic", &receiver.url("/ok/x")).await;
    let id = hook["id"].as_str().unwrap();
    for (query, field) in [
        ("minutes=0", "minutes"),
        ("minutes=361", "minutes"),
        ("minutes=abc", "minutes"),
        ("webhookId=", "webhookId"),
        ("minute=5", "minute"),
    ] {
        let (status, body) = server
            .call("GET", &format!("/api/v1/stats?{query}"), None)
            .await;
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(body["type"], "VALIDATION");
        assert!(
            body["description"].as_str().unwrap().starts_with(field),
            "{query}: {body}"
        );
    }
    let (status, _) = server
        .call("GET", "/api/v1/stats?webhookId=no-such-webhook", None)
        .await;
    assert_eq!(status, 404);

    let other = App {
        id: "other-app".into(),
        name: "other".into(),
        management_token: "amt_other".into(),
        created_at: T0,
    };
    server.server.state.store.create_app(&other).await.unwrap();
    let (status, body) = server
        .call_as(
            "amt_other",
            "GET",
            &format!("/api/v1/stats?webhookId={id}"),
            None,
        )
        .await;
    assert_eq!(status, 404, "another application's webhook: {body}");
    let (status, _) = server
        .call_as("amt_wrong", "GET", "/api/v1/stats", None)
        .await;
    assert_eq!(status, 401);

    let (_, doc) = server.call("GET", "/openapi.json", None).await;
    for path in [
        "/api/v1/stats",
        "/api/v1/catalog",
        "/api/v1/webhooks/{id}/subscriptions",
        "/api/v1/vehicles/{id}/webhooks",
        "/api/v1/vehicles/{id}/deliveries",
        "/",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} in /openapi.json");
    }
}

#[tokio::test]
async fn the_catalog_offers_what_the_webhook_api_accepts() {
    let server = TestServer::start().await;
    let answer = server
        .http
        .get(server.url("/api/v1/catalog"))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let catalog: Value = answer.json().await.unwrap();
    let groups = catalog["signalGroups"].as_array().unwrap();
    assert!(groups.len() >= 19, "{}", groups.len());
    let battery = groups
        .iter()
        .find(|g| g["group"] == "TractionBattery")
        .expect("TractionBattery");
    assert!(battery["signals"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["code"] == "tractionbattery-stateofcharge" && s["name"] == "StateOfCharge"));
    assert!(catalog["endpoints"]
        .as_array()
        .unwrap()
        .contains(&json!("/engine/oil")));
    // A webhook made of the catalog's first choices is accepted.
    let receiver = Receiver::start(Some(&server.token)).await;
    let (status, body) = server
        .call(
            "POST",
            "/api/v1/webhooks",
            Some(json!({
                "name": "from the catalog", "type": "scheduled", "callbackUri": receiver.url("/ok/c"),
                "schedule": {"frequency": catalog["frequencies"][0], "interval": 1},
                "endpoints": catalog["endpoints"], "units": catalog["units"][1],
            })),
        )
        .await;
    assert_eq!(status, 201, "{body}");
}

#[tokio::test]
async fn subscribing_with_the_management_token_and_a_vehicles_webhooks_and_deliveries() {
    let server = TestServer::start().await;
    let mut receiver = Receiver::start(Some(&server.token)).await;
    let vehicle = server.vehicle().await;
    let vehicle_id = vehicle["id"].as_str().unwrap();
    server
        .ingest(
            vehicle_id,
            json!([{"code": "tractionbattery-stateofcharge", "body": {"unit": "percent", "value": 61}}]),
        )
        .await;
    let hook = server
        .enabled_webhook("vehicleState", &receiver.url("/ok/v"))
        .await;
    let hook_id = hook["id"].as_str().unwrap();
    receiver.next().await;

    let path = format!("/api/v1/webhooks/{hook_id}/subscriptions");
    let (status, body) = server
        .call("POST", &path, Some(json!({"vehicleId": vehicle_id})))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["created"], true);
    let (_, again) = server
        .call("POST", &path, Some(json!({"vehicleId": vehicle_id})))
        .await;
    assert_eq!(
        again["created"], false,
        "subscribing twice is one subscription"
    );
    server.run_due().await;
    // Subscribe and resubscribe each send a first delivery (and the error for the data
    // signal this vehicle lacks).
    let mut firsts = 0;
    for _ in 0..4 {
        let got = receiver.next().await.json();
        if got["triggers"][0]["type"] == "FIRST_DELIVERY" {
            firsts += 1;
        }
    }
    assert_eq!(firsts, 2);

    let (status, body) = server
        .call("POST", &path, Some(json!({"vehicleId": "no-such-vehicle"})))
        .await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = server
        .call("POST", &path, Some(json!({"vehicle": "x"})))
        .await;
    assert_eq!(status, 400, "{body}");

    let (_, webhooks) = server
        .call(
            "GET",
            &format!("/api/v1/vehicles/{vehicle_id}/webhooks"),
            None,
        )
        .await;
    assert_eq!(webhooks["webhooks"][0]["id"], hook_id, "{webhooks}");

    let (status, log) = server
        .call(
            "GET",
            &format!("/api/v1/vehicles/{vehicle_id}/deliveries"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{log}");
    let deliveries = log["deliveries"].as_array().unwrap();
    assert_eq!(deliveries.len(), 4, "{log}");
    assert!(deliveries.iter().all(|d| d["vehicleIds"]
        .as_array()
        .unwrap()
        .contains(&json!(vehicle_id))));
    assert!(deliveries.iter().any(|d| d["eventType"] == "VEHICLE_STATE"));
    let (_, one) = server
        .call(
            "GET",
            &format!("/api/v1/vehicles/{vehicle_id}/deliveries?limit=1"),
            None,
        )
        .await;
    assert_eq!(
        one["deliveries"][0]["id"], deliveries[0]["id"],
        "newest first"
    );
    let (status, body) = server
        .call(
            "GET",
            &format!("/api/v1/vehicles/{vehicle_id}/deliveries?limit=0"),
            None,
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(body["description"].as_str().unwrap().starts_with("limit"));
}

#[tokio::test]
async fn verification_shows_the_challenge_and_attempts_show_their_request_headers() {
    let server = TestServer::start().await;
    let mut receiver = Receiver::start(Some(&server.token)).await;
    let hook = server.webhook("dynamic", &receiver.url("/ok/h")).await;
    let id = hook["id"].as_str().unwrap();
    let (status, verified) = server
        .call("POST", &format!("/api/v1/webhooks/{id}/verify"), None)
        .await;
    assert_eq!(status, 200, "{verified}");
    let challenge = verified["challenge"].as_str().unwrap();
    assert_eq!(
        verified["expected"],
        hmac_hex(&server.token, challenge.as_bytes())
    );
    let received: Value = serde_json::from_str(verified["received"].as_str().unwrap()).unwrap();
    assert_eq!(received["challenge"], verified["expected"]);
    receiver.next().await;

    let (_, test) = server
        .call("POST", &format!("/api/v1/webhooks/{id}/test"), None)
        .await;
    server.run_due().await;
    let got = receiver.next().await;
    let delivery = server.delivery(test["deliveryId"].as_str().unwrap()).await;
    let headers = &delivery["attempts"][0]["requestHeaders"];
    assert_eq!(
        headers["SC-Signature"],
        got.header("sc-signature"),
        "{headers}"
    );
    assert_eq!(headers["webhook-id"], got.header("webhook-id"));
    assert_eq!(headers["User-Agent"], got.header("user-agent"));
}
