//! Bad input gets a clear error in Smartcar's shape and changes nothing: malformed JSON, wrong
//! types, unknown signal codes, unknown ids, bodies over 1 MB.

mod common;

use common::*;
use serde_json::{json, Value};

/// Everything a bad request could have touched, to compare before and after.
async fn snapshot(server: &TestServer, vehicle_id: &str, webhook_id: &str) -> Value {
    let vehicles = server.call("GET", "/api/v1/vehicles", None).await.1;
    let vehicle = server
        .call("GET", &format!("/api/v1/vehicles/{vehicle_id}"), None)
        .await
        .1;
    let webhooks = server.call("GET", "/api/v1/webhooks", None).await.1;
    let webhook = server
        .call("GET", &format!("/api/v1/webhooks/{webhook_id}"), None)
        .await
        .1;
    let subs = server
        .call(
            "GET",
            &format!("/api/v1/webhooks/{webhook_id}/subscriptions"),
            None,
        )
        .await
        .1;
    json!([vehicles, vehicle, webhooks, webhook, subs])
}

async fn raw(server: &TestServer, method: &str, path: &str, body: &str) -> (u16, Value) {
    let response = server
        .http
        .request(
            reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
            server.url(path),
        )
        .bearer_auth(&server.token)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body = response.json::<Value>().await.unwrap_or(Value::Null);
    (status, body)
}

#[tokio::test]
async fn bad_requests_get_a_400_naming_the_field_and_change_nothing() {
    let server = TestServer::start().await;
    let vehicle = server.vehicle().await;
    let v = vehicle["id"].as_str().unwrap();
    let hook = server.webhook("scheduled", "http://127.0.0.1:9/ok").await;
    let w = hook["id"].as_str().unwrap();
    let (status, _) = server
        .call(
            "POST",
            &format!("/api/v1/vehicles/{v}/signals"),
            Some(json!({"signals":[{"code":"tractionbattery-stateofcharge","body":{"unit":"percent","value":50}}]})),
        )
        .await;
    assert_eq!(status, 202);
    let before = snapshot(&server, v, w).await;

    let ingest = format!("/api/v1/vehicles/{v}/signals");
    let webhook = format!("/api/v1/webhooks/{w}");
    let deliveries = format!("/api/v1/webhooks/{w}/deliveries?status=lost");
    let cases: Vec<(&str, &str, String, &str)> = vec![
        ("POST", "/api/v1/vehicles", "{\"make\":".into(), "not valid JSON"),
        ("POST", "/api/v1/vehicles", "[1,2]".into(), "request body"),
        ("POST", "/api/v1/vehicles", r#"{"make":"A","model":"B","year":"2020"}"#.into(), "year"),
        ("POST", "/api/v1/vehicles", r#"{"model":"B","year":2020}"#.into(), "make"),
        ("POST", "/api/v1/vehicles", r#"{"make":"A","model":"B","year":2020,"colour":"red"}"#.into(), "colour"),
        ("POST", "/api/v1/vehicles", r#"{"make":"A","model":"B","year":2020,"vin":"SHORT"}"#.into(), "vin"),
        ("POST", "/api/v1/vehicles", r#"{"make":"A","model":"B","year":2020,"mode":"fake"}"#.into(), "mode"),
        ("POST", "/api/v1/vehicles", r#"{"make":"","model":"B","year":2020}"#.into(), "make"),
        // Ingest: one bad signal rejects the whole request, good ones included.
        (
            "POST",
            &ingest,
            r#"{"signals":[{"code":"odometer-traveleddistance","body":{"unit":"kilometers","value":10}},{"code":"nope-nope","body":{"value":1}}]}"#.into(),
            "signals[1].code",
        ),
        (
            "POST",
            &ingest,
            r#"{"signals":[{"code":"odometer-traveleddistance","body":{"unit":"kilometers","value":10}},{"code":"tractionbattery-stateofcharge","body":{"value":"full"}}]}"#.into(),
            "signals[1]",
        ),
        ("POST", &ingest, r#"{"signals":{"code":"x"}}"#.into(), "signals"),
        ("POST", &ingest, r#"{"signals":[]}"#.into(), "signals"),
        (
            "POST",
            &ingest,
            r#"{"signals":[{"code":"odometer-traveleddistance","body":{"unit":"kilometers","value":10},"oemUpdatedAt":"yesterday"}]}"#.into(),
            "oemUpdatedAt",
        ),
        ("POST", &ingest, r#"{"errors":[{"type":"MADE_UP","code":"X"}]}"#.into(), "errors[0].type"),
        // Webhooks.
        ("POST", "/api/v1/webhooks", r#"{"name":"x","type":"weekly","callbackUri":"http://127.0.0.1:9/"}"#.into(), "type"),
        ("POST", "/api/v1/webhooks", r#"{"name":"x","type":"dynamic","callbackUri":"ftp://example.com/"}"#.into(), "callbackUri"),
        ("POST", "/api/v1/webhooks", r#"{"name":"x","type":"dynamic","callbackUri":"not a url"}"#.into(), "callbackUri"),
        ("POST", "/api/v1/webhooks", r#"{"name":"x","type":"dynamic","callbackUri":"http://127.0.0.1:9/","endpoints":["/battery"]}"#.into(), "endpoints"),
        ("POST", "/api/v1/webhooks", r#"{"name":"x","type":"eventBased","callbackUri":"http://127.0.0.1:9/","events":["DIAGNOSTIC_TROUBLE_CODES","DIAGNOSTIC_SYSTEM_ALERTS"]}"#.into(), "events"),
        ("POST", "/api/v1/webhooks", r#"{"name":"x","type":"vehicleState","callbackUri":"http://127.0.0.1:9/","triggers":["made-up"]}"#.into(), "triggers[0]"),
        ("POST", "/api/v1/webhooks", r#"{"name":"x","type":"scheduled","callbackUri":"http://127.0.0.1:9/","schedule":{"frequency":"hourly","interval":-1},"endpoints":["/battery"]}"#.into(), "schedule.interval"),
        ("POST", "/api/v1/webhooks", r#"{"name":42,"type":"dynamic","callbackUri":"http://127.0.0.1:9/"}"#.into(), "name"),
        ("PATCH", &webhook, r#"{"type":"dynamic"}"#.into(), "type"),
        ("PATCH", &webhook, r#"{"endpoints":["/nowhere"]}"#.into(), "endpoints[0]"),
        ("PATCH", &webhook, r#"{"callbackUri":"gopher://x"}"#.into(), "callbackUri"),
        ("PATCH", &webhook, r#"{"maxPayloadBytes":"big"}"#.into(), "maxPayloadBytes"),
        ("GET", &deliveries, String::new(), "status"),
        ("GET", "/api/v1/vehicles?limit=0", String::new(), "limit"),
        ("GET", "/api/v1/vehicles?offset=-3", String::new(), "offset"),
    ];
    for (method, path, body, field) in cases {
        let (status, answer) = raw(&server, method, path, &body).await;
        assert_eq!(status, 400, "{method} {path} {body}: {answer}");
        assert_eq!(answer["type"], "VALIDATION", "{method} {path} {body}");
        let description = answer["description"].as_str().unwrap_or_default();
        assert!(
            description.contains(field),
            "{method} {path} {body}: {description:?} should name {field}"
        );
        for key in [
            "type",
            "code",
            "description",
            "docURL",
            "statusCode",
            "requestId",
            "resolution",
        ] {
            assert!(
                answer.get(key).is_some(),
                "{method} {path}: error lacks {key}"
            );
        }
    }
    assert_eq!(
        before,
        snapshot(&server, v, w).await,
        "a bad request changed something"
    );
}

#[tokio::test]
async fn unknown_ids_are_404_and_unknown_paths_are_404_in_smartcar_shape() {
    let server = TestServer::start().await;
    let vehicle = server.vehicle().await;
    let token = vehicle["accessToken"].as_str().unwrap();
    let v = vehicle["id"].as_str().unwrap();
    for (method, path) in [
        ("GET", "/api/v1/vehicles/no-such-vehicle"),
        ("POST", "/api/v1/webhooks/no-such-webhook/verify"),
        ("GET", "/api/v1/deliveries/no-such-delivery"),
        ("POST", "/api/v1/deliveries/no-such-delivery/retry"),
        ("GET", "/api/v1/nothing-here"),
    ] {
        let (status, answer) = server.call(method, path, None).await;
        assert_eq!(status, 404, "{method} {path}: {answer}");
        assert_eq!(answer["statusCode"], 404);
    }
    let (status, answer) = server
        .call_as(token, "GET", &format!("/v2.0/vehicles/{v}/teleport"), None)
        .await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (404, Some("PATH")),
        "{answer}"
    );
    let (status, _) = server
        .call_as(
            token,
            "GET",
            &format!("/v3/vehicles/{v}/signals/nope-nope"),
            None,
        )
        .await;
    assert_eq!(status, 404);
    let (status, answer) = server
        .call_as(
            token,
            "POST",
            &format!("/v2.0/vehicles/{v}/webhooks/no-such-webhook"),
            None,
        )
        .await;
    assert_eq!(status, 404, "{answer}");
    let (status, _) = server.call("PUT", "/api/v1/webhooks", None).await;
    assert_eq!(status, 405);
}

#[tokio::test]
async fn a_body_over_one_megabyte_is_refused_with_413() {
    let server = TestServer::start().await;
    let vehicle = server.vehicle().await;
    let v = vehicle["id"].as_str().unwrap();
    let huge = format!(
        r#"{{"signals":[{{"code":"vehicleidentification-nickname","body":{{"value":"{}"}}}}]}}"#,
        "x".repeat(1_100_000)
    );
    let (status, answer) = raw(
        &server,
        "POST",
        &format!("/api/v1/vehicles/{v}/signals"),
        &huge,
    )
    .await;
    assert_eq!(status, 413, "{answer}");
    assert_eq!(answer["statusCode"], 413);
    let (_, after) = server
        .call("GET", &format!("/api/v1/vehicles/{v}"), None)
        .await;
    assert_eq!(after["signals"].as_array().unwrap().len(), 0);
}
