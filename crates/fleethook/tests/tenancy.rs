//! Tenancy as a table over every endpoint: another application's token sees 404 for our
//! objects (never 403, never the object), a bad or missing token gets 401, and another user's
//! vehicle token cannot read our user's vehicles.

mod common;

use common::*;
use fleethook::model::App;
use serde_json::{json, Value};

struct Fixture {
    server: TestServer,
    vehicle_id: String,
    vehicle_token: String,
    webhook_id: String,
    delivery_id: String,
    other_token: String,
    other_vehicle_token: String,
    same_app_other_user_token: String,
}

async fn fixture(backend: Backend) -> Fixture {
    let server = TestServer::start_on(backend).await;
    let mut receiver = Receiver::start(Some(&server.token)).await;
    let vehicle = server.vehicle().await;
    let hook = server
        .enabled_webhook("vehicleState", &receiver.url("/ok/t"))
        .await;
    receiver.next().await;
    let webhook_id = hook["id"].as_str().unwrap().to_string();
    let (_, test) = server
        .call("POST", &format!("/api/v1/webhooks/{webhook_id}/test"), None)
        .await;

    let other = App {
        id: "other-app".into(),
        name: "other".into(),
        management_token: "amt_other".into(),
        created_at: T0,
    };
    server.server.state.store.create_app(&other).await.unwrap();
    let (status, other_vehicle) = server
        .call_as(
            "amt_other",
            "POST",
            "/api/v1/vehicles",
            Some(json!({"make":"FORD","model":"F-150","year":2022})),
        )
        .await;
    assert_eq!(status, 201);
    let (_, sibling) = server
        .call(
            "POST",
            "/api/v1/vehicles",
            Some(json!({"make":"KIA","model":"EV6","year":2023})),
        )
        .await;
    Fixture {
        vehicle_id: vehicle["id"].as_str().unwrap().into(),
        vehicle_token: vehicle["accessToken"].as_str().unwrap().into(),
        webhook_id,
        delivery_id: test["deliveryId"].as_str().unwrap().into(),
        other_token: "amt_other".into(),
        other_vehicle_token: other_vehicle["accessToken"].as_str().unwrap().into(),
        same_app_other_user_token: sibling["accessToken"].as_str().unwrap().into(),
        server,
    }
}

/// Every endpoint that names one of our objects: (method, path, body, token kind).
fn object_endpoints(f: &Fixture) -> Vec<(&'static str, String, Option<Value>, &'static str)> {
    let (v, w, d) = (&f.vehicle_id, &f.webhook_id, &f.delivery_id);
    let signals = json!({"signals":[{"code":"tractionbattery-stateofcharge","body":{"unit":"percent","value":50}}]});
    vec![
        ("GET", format!("/api/v1/vehicles/{v}"), None, "amt"),
        ("DELETE", format!("/api/v1/vehicles/{v}"), None, "amt"),
        (
            "POST",
            format!("/api/v1/vehicles/{v}/signals"),
            Some(signals),
            "amt",
        ),
        ("GET", format!("/api/v1/webhooks/{w}"), None, "amt"),
        (
            "PATCH",
            format!("/api/v1/webhooks/{w}"),
            Some(json!({"name":"stolen"})),
            "amt",
        ),
        ("DELETE", format!("/api/v1/webhooks/{w}"), None, "amt"),
        ("POST", format!("/api/v1/webhooks/{w}/verify"), None, "amt"),
        ("POST", format!("/api/v1/webhooks/{w}/test"), None, "amt"),
        ("POST", format!("/api/v1/webhooks/{w}/enable"), None, "amt"),
        ("POST", format!("/api/v1/webhooks/{w}/disable"), None, "amt"),
        (
            "POST",
            format!("/api/v1/webhooks/{w}/rotate-secret"),
            None,
            "amt",
        ),
        (
            "GET",
            format!("/api/v1/webhooks/{w}/subscriptions"),
            None,
            "amt",
        ),
        (
            "GET",
            format!("/api/v1/webhooks/{w}/deliveries"),
            None,
            "amt",
        ),
        ("GET", format!("/api/v1/deliveries/{d}"), None, "amt"),
        ("GET", format!("/api/v1/stats?webhookId={w}"), None, "amt"),
        (
            "POST",
            format!("/api/v1/webhooks/{w}/subscriptions"),
            Some(json!({ "vehicleId": v })),
            "amt",
        ),
        ("GET", format!("/api/v1/vehicles/{v}/webhooks"), None, "amt"),
        (
            "GET",
            format!("/api/v1/vehicles/{v}/deliveries"),
            None,
            "amt",
        ),
        ("POST", format!("/api/v1/deliveries/{d}/retry"), None, "amt"),
        (
            "DELETE",
            format!("/v2.0/vehicles/{v}/webhooks/{w}"),
            None,
            "amt",
        ),
        ("GET", format!("/v2.0/vehicles/{v}"), None, "vehicle"),
        (
            "GET",
            format!("/v2.0/vehicles/{v}/battery"),
            None,
            "vehicle",
        ),
        (
            "GET",
            format!("/v2.0/vehicles/{v}/location"),
            None,
            "vehicle",
        ),
        (
            "POST",
            format!("/v2.0/vehicles/{v}/batch"),
            Some(json!({"requests":[{"path":"/battery"}]})),
            "vehicle",
        ),
        (
            "POST",
            format!("/v2.0/vehicles/{v}/webhooks/{w}"),
            None,
            "vehicle",
        ),
        ("GET", format!("/v3/vehicles/{v}/signals"), None, "vehicle"),
        (
            "GET",
            format!("/v3/vehicles/{v}/signals/tractionbattery-stateofcharge"),
            None,
            "vehicle",
        ),
    ]
}

async fn another_applications_tokens_get_404_for_every_object_and_change_nothing(backend: Backend) {
    let f = fixture(backend).await;
    let before_webhook = f
        .server
        .call("GET", &format!("/api/v1/webhooks/{}", f.webhook_id), None)
        .await
        .1;
    let before_vehicle = f
        .server
        .call("GET", &format!("/api/v1/vehicles/{}", f.vehicle_id), None)
        .await
        .1;
    for (method, path, body, kind) in object_endpoints(&f) {
        let token = if kind == "amt" {
            &f.other_token
        } else {
            &f.other_vehicle_token
        };
        let (status, answer) = f.server.call_as(token, method, &path, body.clone()).await;
        assert_eq!(
            status, 404,
            "{method} {path} with another application's token: {answer}"
        );
        assert_eq!(
            answer["statusCode"], 404,
            "{method} {path}: Smartcar error shape"
        );
        assert!(answer["requestId"].is_string(), "{method} {path}");
        if kind == "vehicle" {
            // Another user of the same application is refused the same way.
            let (status, answer) = f
                .server
                .call_as(&f.same_app_other_user_token, method, &path, body)
                .await;
            assert_eq!(
                status, 404,
                "{method} {path} with another user's token: {answer}"
            );
        }
    }
    let after_webhook = f
        .server
        .call("GET", &format!("/api/v1/webhooks/{}", f.webhook_id), None)
        .await
        .1;
    let after_vehicle = f
        .server
        .call("GET", &format!("/api/v1/vehicles/{}", f.vehicle_id), None)
        .await
        .1;
    assert_eq!(before_webhook, after_webhook);
    assert_eq!(before_vehicle, after_vehicle);
    // Lists show only one's own objects.
    let (_, list) = f
        .server
        .call_as(&f.other_token, "GET", "/api/v1/webhooks", None)
        .await;
    assert_eq!(list["webhooks"].as_array().unwrap().len(), 0);
    let (_, list) = f
        .server
        .call_as(&f.other_token, "GET", "/api/v1/vehicles", None)
        .await;
    assert_eq!(list["vehicles"].as_array().unwrap().len(), 1);
    let (_, list) = f
        .server
        .call_as(&f.other_vehicle_token, "GET", "/v2.0/vehicles", None)
        .await;
    assert_eq!(list["vehicles"].as_array().unwrap().len(), 1);
    assert_ne!(list["vehicles"][0], f.vehicle_id.as_str());
}

async fn a_missing_or_wrong_token_gets_401_everywhere(backend: Backend) {
    let f = fixture(backend).await;
    let mut endpoints = object_endpoints(&f);
    endpoints.push((
        "POST",
        "/api/v1/vehicles".into(),
        Some(json!({"make":"A","model":"B","year":2020})),
        "amt",
    ));
    endpoints.push(("GET", "/api/v1/vehicles".into(), None, "amt"));
    endpoints.push((
        "POST",
        "/api/v1/webhooks".into(),
        Some(json!({"name":"x"})),
        "amt",
    ));
    endpoints.push(("GET", "/api/v1/webhooks".into(), None, "amt"));
    endpoints.push(("GET", "/v2.0/vehicles".into(), None, "vehicle"));
    for (method, path, body, kind) in endpoints {
        let (status, answer) = f
            .server
            .call_as("not-a-token", method, &path, body.clone())
            .await;
        assert_eq!(status, 401, "{method} {path}: {answer}");
        assert_eq!(answer["type"], "AUTHENTICATION", "{method} {path}");
        // A vehicle token is not a management token, and the other way round.
        let crossed = if kind == "amt" {
            &f.vehicle_token
        } else {
            &f.server.token
        };
        let (status, _) = f.server.call_as(crossed, method, &path, body.clone()).await;
        assert_eq!(status, 401, "{method} {path} with the other kind of token");
        let url = f.server.url(&path);
        let request = f
            .server
            .http
            .request(reqwest::Method::from_bytes(method.as_bytes()).unwrap(), url);
        let response = request.send().await.unwrap();
        assert_eq!(
            response.status().as_u16(),
            401,
            "{method} {path} without a token"
        );
    }
}

/// Lookups a store may cache never outlive the change: a replaced management token is 401 on
/// the very next request, and a deleted vehicle's ingest is 404, right after both worked.
async fn a_replaced_token_and_a_deleted_vehicle_stop_working_at_once(backend: Backend) {
    let server = TestServer::start_on(backend).await;
    let vehicle = server.vehicle().await;
    let id = vehicle["id"].as_str().unwrap();
    let signals =
        json!([{"code":"tractionbattery-stateofcharge","body":{"unit":"percent","value":50}}]);
    server.ingest(id, signals.clone()).await;

    let (status, _) = server
        .call("DELETE", &format!("/api/v1/vehicles/{id}"), None)
        .await;
    assert_eq!(status, 204);
    let (status, answer) = server
        .call(
            "POST",
            &format!("/api/v1/vehicles/{id}/signals"),
            Some(json!({ "signals": signals })),
        )
        .await;
    assert_eq!(status, 404, "{answer}");

    let store = &server.server.state.store;
    let app = store.app_by_token(&server.token).await.unwrap().unwrap();
    store.set_app_token(&app.id, "amt_replaced").await.unwrap();
    let (status, answer) = server.call("GET", "/api/v1/vehicles", None).await;
    assert_eq!(status, 401, "the replaced token: {answer}");
    let (status, answer) = server
        .call_as("amt_replaced", "GET", "/api/v1/vehicles", None)
        .await;
    assert_eq!(status, 200, "the new token: {answer}");
}

on_both_stores!(
    another_applications_tokens_get_404_for_every_object_and_change_nothing,
    a_missing_or_wrong_token_gets_401_everywhere,
    a_replaced_token_and_a_deleted_vehicle_stop_working_at_once,
);
