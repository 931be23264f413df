//! Operations endpoints over HTTP: health, Prometheus metrics that move with deliveries, and
//! an OpenAPI document that lists every route the server answers.

mod common;

use common::*;

#[tokio::test]
async fn healthz_metrics_and_openapi_answer() {
    let server = TestServer::start().await;
    let mut receiver = Receiver::start(Some(&server.token)).await;

    let health = server
        .http
        .get(server.url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status().as_u16(), 200);

    let hook = server
        .enabled_webhook("dynamic", &receiver.url("/ok/metrics"))
        .await;
    receiver.next().await;
    let id = hook["id"].as_str().unwrap();
    server
        .call("POST", &format!("/api/v1/webhooks/{id}/test"), None)
        .await;
    server.run_due().await;
    receiver.next().await;
    let metrics = server
        .http
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(metrics.status().as_u16(), 200);
    let text = metrics.text().await.unwrap();
    let succeeded = text
        .lines()
        .find(|l| {
            l.starts_with("fleethook_deliveries_total") && l.contains("outcome=\"succeeded\"")
        })
        .unwrap_or_else(|| panic!("no succeeded counter in:\n{text}"));
    let count: f64 = succeeded.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(count >= 2.0, "challenge and test payload: {succeeded}");
    assert!(
        text.contains("fleethook_delivery_attempt_duration_seconds_bucket"),
        "{text}"
    );
    assert!(text.contains("fleethook_outbox_depth"), "{text}");
    // The server's SQLite store has written (the webhook, its deliveries): its write
    // connection was held for some time.
    let write_busy = text
        .lines()
        .find(|l| l.starts_with("fleethook_store_write_busy_seconds_total"))
        .unwrap_or_else(|| panic!("no write-busy counter in:\n{text}"));
    let seconds: f64 = write_busy.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(seconds > 0.0, "{write_busy}");

    let (status, doc) = server.call("GET", "/openapi.json", None).await;
    assert_eq!(status, 200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    // Every documented path is served: probing each with its own method never hits the
    // "no endpoint" fallback.
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            let concrete = path
                .replace("{id}", "x")
                .replace("{webhookId}", "x")
                .replace("{code}", "x")
                .replace("{endpoint}", "battery");
            let (status, body) = server.call(&method.to_uppercase(), &concrete, None).await;
            let unrouted =
                status == 404 && body["code"] == "PATH" && concrete != "/v2.0/vehicles/x/battery";
            assert!(
                !unrouted && status != 405,
                "{method} {path} is documented but not served: {status} {body}"
            );
        }
    }
}

/// A stopped server has let go of its SQLite file, so a new one opens it at once, even right
/// after a request on a keep-alive connection (whose task holds the server's state a moment
/// longer than the server itself runs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_server_releases_its_database_for_the_next() {
    let mut server = TestServer::start_on(Backend::Sqlite).await;
    for _ in 0..20 {
        let health = server
            .http
            .get(server.url("/healthz"))
            .send()
            .await
            .unwrap();
        assert_eq!(health.status().as_u16(), 200);
        // Opening the same file fails while the previous server's store is still open.
        server = server.restart().await;
    }
    let (status, _) = server.call("GET", "/api/v1/webhooks", None).await;
    assert_eq!(status, 200, "the last server serves");
}
