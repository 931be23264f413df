//! The dispatcher end to end: the real SQLite store, a manual clock, and a real HTTP receiver on
//! 127.0.0.1 that reports every request over a channel. Signatures are checked with HMAC code
//! written here, independent of the wire crate.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

use fleethook::clock::{real_now_ms, Clock, ManualClock, Millis, SharedClock};
use fleethook::delivery::dispatcher::{DispatchError, Dispatcher, DispatcherSettings};
use fleethook::delivery::http::DeliveryClient;
use fleethook::metrics::Metrics;
use fleethook::model::*;
use fleethook::store::sqlite::SqliteStore;
use fleethook::store::SharedStore;

/// 2024-06-01T12:00:00Z: far from real time, so platform and real timestamps can't be confused.
const START: Millis = 1_717_243_200_000;
const AMT: &str = "amt_test_management_token";
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const OLD_SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
/// How long a test waits on a channel before it fails instead of hanging.
const PATIENCE: Duration = Duration::from_secs(10);

// --- the receiver ---------------------------------------------------------------------------

/// One request as the receiver saw it.
#[derive(Debug)]
struct Received {
    headers: HeaderMap,
    body: String,
}

/// What the receiver answers.
#[derive(Clone)]
struct Reply {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: String,
}

impl Reply {
    fn status(status: u16) -> Self {
        Reply {
            status,
            headers: Vec::new(),
            body: String::new(),
        }
    }
}

#[derive(Clone)]
struct ReceiverState {
    seen: mpsc::UnboundedSender<Received>,
    reply: Arc<Mutex<Reply>>,
}

/// A real HTTP server on 127.0.0.1 that records requests and answers with a settable reply.
struct Receiver {
    addr: SocketAddr,
    seen: mpsc::UnboundedReceiver<Received>,
    reply: Arc<Mutex<Reply>>,
}

impl Receiver {
    async fn start(reply: Reply) -> Receiver {
        let (tx, seen) = mpsc::unbounded_channel();
        let reply = Arc::new(Mutex::new(reply));
        let state = ReceiverState {
            seen: tx,
            reply: reply.clone(),
        };
        let app = Router::new().fallback(receive).with_state(state);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver { addr, seen, reply }
    }

    fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    fn answer(&self, reply: Reply) {
        *self.reply.lock().unwrap() = reply;
    }

    /// The next request, failing the test if none comes in time.
    async fn next(&mut self) -> Received {
        tokio::time::timeout(PATIENCE, self.seen.recv())
            .await
            .expect("the receiver got nothing in time")
            .expect("the receiver stopped")
    }

    /// Everything received so far, without waiting: `run_due` has already awaited every attempt.
    fn drain(&mut self) -> Vec<Received> {
        let mut all = Vec::new();
        while let Ok(r) = self.seen.try_recv() {
            all.push(r);
        }
        all
    }
}

async fn receive(State(state): State<ReceiverState>, headers: HeaderMap, body: Bytes) -> Response {
    let _ = state.seen.send(Received {
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    });
    let reply = state.reply.lock().unwrap().clone();
    let mut response = (StatusCode::from_u16(reply.status).unwrap(), reply.body).into_response();
    for (name, value) in reply.headers {
        response.headers_mut().insert(
            HeaderName::from_static(name),
            HeaderValue::from_str(&value).unwrap(),
        );
    }
    response
}

// --- the platform under test -----------------------------------------------------------------

struct Platform {
    store: SharedStore,
    clock: Arc<ManualClock>,
    dispatcher: Arc<Dispatcher>,
    metrics: Arc<Metrics>,
    app: App,
    _dir: tempfile::TempDir,
}

async fn platform(allow_private: bool) -> Platform {
    platform_with(DispatcherSettings {
        allow_private,
        ..DispatcherSettings::default()
    })
    .await
}

async fn platform_with(settings: DispatcherSettings) -> Platform {
    let dir = tempfile::tempdir().unwrap();
    let store: SharedStore = Arc::new(
        SqliteStore::open(&dir.path().join("fleethook.db"))
            .await
            .unwrap(),
    );
    let clock = ManualClock::new(START);
    let app = App {
        id: fleethook::ids::new_id(),
        name: "test".into(),
        management_token: AMT.into(),
        created_at: START,
    };
    store.create_app(&app).await.unwrap();
    let metrics = Arc::new(Metrics::new());
    let shared_clock: SharedClock = clock.clone();
    let client = DeliveryClient::new(settings.allow_private);
    let dispatcher = Dispatcher::new(
        store.clone(),
        shared_clock,
        client,
        metrics.clone(),
        settings,
    );
    Platform {
        store,
        clock,
        dispatcher,
        metrics,
        app,
        _dir: dir,
    }
}

impl Platform {
    async fn webhook(&self, kind: WebhookKind, callback_uri: &str) -> Webhook {
        self.webhook_with(kind, callback_uri, WebhookStatus::Enabled)
            .await
    }

    async fn webhook_with(
        &self,
        kind: WebhookKind,
        callback_uri: &str,
        status: WebhookStatus,
    ) -> Webhook {
        let webhook = Webhook {
            id: fleethook::ids::new_id(),
            app_id: self.app.id.clone(),
            name: format!("{} hook", kind.as_str()),
            kind,
            callback_uri: callback_uri.to_string(),
            error_callback_uri: None,
            config: json!({}),
            status,
            disabled_reason: None,
            signing_secret: SECRET.to_string(),
            previous_secret: None,
            previous_secret_expires_at: None,
            max_payload_bytes: 50_000,
            created_at: START,
            updated_at: START,
        };
        self.store.create_webhook(&webhook).await.unwrap();
        webhook
    }

    /// Puts one payload in the outbox, due now; returns the delivery.
    async fn enqueue(
        &self,
        webhook: &Webhook,
        purpose: DeliveryPurpose,
        body: &str,
    ) -> NewDelivery {
        let now = self.clock.now_ms();
        let due = (purpose != DeliveryPurpose::Verify).then_some(now);
        self.enqueue_at(webhook, purpose, body, due).await
    }

    async fn enqueue_at(
        &self,
        webhook: &Webhook,
        purpose: DeliveryPurpose,
        body: &str,
        due: Option<Millis>,
    ) -> NewDelivery {
        self.enqueue_event(webhook, purpose, &fleethook::ids::new_id(), body, due)
            .await
    }

    /// `count` scheduled payloads for `webhook`, due a minute before `START`: a backlog older
    /// than anything enqueued later, so it comes first in every claim.
    async fn enqueue_backlog(&self, webhook: &Webhook, count: i64) {
        for i in 0..count {
            self.enqueue_at(
                webhook,
                DeliveryPurpose::Event,
                &scheduled_body(webhook),
                Some(START - 60_000 + i),
            )
            .await;
        }
    }

    async fn enqueue_event(
        &self,
        webhook: &Webhook,
        purpose: DeliveryPurpose,
        event_id: &str,
        body: &str,
        due: Option<Millis>,
    ) -> NewDelivery {
        let delivery = NewDelivery {
            id: fleethook::ids::new_id(),
            app_id: self.app.id.clone(),
            webhook_id: webhook.id.clone(),
            event_id: event_id.to_string(),
            purpose,
            target_uri: webhook.callback_uri.clone(),
            body: body.to_string(),
            event_type: "test".into(),
            vehicle_ids: vec![],
            next_attempt_at: due,
            created_at: self.clock.now_ms(),
        };
        self.store
            .enqueue_many(std::slice::from_ref(&delivery))
            .await
            .unwrap();
        delivery
    }

    async fn delivery(&self, id: &str) -> Delivery {
        self.store
            .delivery(&self.app.id, id)
            .await
            .unwrap()
            .expect("delivery exists")
    }

    async fn attempts(&self, id: &str) -> Vec<Attempt> {
        self.store.attempts(id).await.unwrap()
    }

    async fn webhook_now(&self, id: &str) -> Webhook {
        self.store
            .webhook(&self.app.id, id)
            .await
            .unwrap()
            .expect("webhook exists")
    }

    fn set_clock(&self, at: Millis) {
        self.clock.set(at);
    }
}

// --- payloads and independent signature checks -------------------------------------------------

fn scheduled_body(webhook: &Webhook) -> String {
    json!({"version":"2.0","webhookId":webhook.id,"eventName":"scheduled","mode":"test",
           "payload":{"vehicles":[{"vehicleId":"v1","requestId":"r1","data":[]}]}})
    .to_string()
}

fn vehicle_state_body(webhook: &Webhook, event_id: &str) -> String {
    json!({"eventId":event_id,"eventType":"VEHICLE_STATE","vehicleId":"v1",
           "data":{"user":{"id":"u1"},"vehicle":{"id":"v1","make":"TESLA","model":"Model 3","year":2020},"signals":[]},
           "triggers":[{"type":"FIRST_DELIVERY"}],
           "meta":{"version":"4.0","webhookId":webhook.id,"webhookName":webhook.name,
                   "deliveryId":"placeholder","deliveredAt":0,"mode":"TEST","signalCount":0}})
    .to_string()
}

fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

/// `SC-Signature`: lowercase hex HMAC-SHA256 keyed by the management token.
fn expected_sc_signature(body: &str) -> String {
    hex::encode(hmac_sha256(AMT.as_bytes(), body.as_bytes()))
}

/// One Standard Webhooks `v1,` entry: base64 HMAC-SHA256 of `id.timestamp.body`, keyed by the
/// base64-decoded part of `whsec_…`.
fn expected_standard_entry(secret: &str, msg_id: &str, timestamp: &str, body: &str) -> String {
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret.trim_start_matches("whsec_"))
        .unwrap();
    let message = format!("{msg_id}.{timestamp}.{body}");
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(hmac_sha256(&key, message.as_bytes()))
    )
}

fn header<'a>(received: &'a Received, name: &str) -> &'a str {
    received
        .headers
        .get(name)
        .unwrap_or_else(|| panic!("missing header {name}"))
        .to_str()
        .unwrap()
}

// --- tests -------------------------------------------------------------------------------------

#[tokio::test]
async fn delivers_a_signed_payload_with_every_header() {
    let p = platform(true).await;
    let mut receiver = Receiver::start(Reply::status(200)).await;
    let webhook = p.webhook(WebhookKind::Scheduled, &receiver.url()).await;
    let body = scheduled_body(&webhook);
    let queued = p.enqueue(&webhook, DeliveryPurpose::Event, &body).await;

    assert_eq!(p.dispatcher.run_due().await, 1);
    let got = receiver.next().await;

    // v2.0 bodies go out byte for byte as rendered.
    assert_eq!(got.body, body);
    assert_eq!(header(&got, "content-type"), "application/json");
    assert_eq!(
        header(&got, "user-agent"),
        format!("fleethook/{}", env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(
        header(&got, "sc-signature"),
        expected_sc_signature(&got.body)
    );
    assert_eq!(header(&got, "webhook-id"), queued.event_id);
    // Real time, not the manual clock's 2024: receivers compare it with their own clock.
    let timestamp: i64 = header(&got, "webhook-timestamp").parse().unwrap();
    assert!((timestamp - real_now_ms() / 1000).abs() < 60, "{timestamp}");
    assert_eq!(
        header(&got, "webhook-signature"),
        expected_standard_entry(
            SECRET,
            &queued.event_id,
            header(&got, "webhook-timestamp"),
            &got.body
        )
    );

    let delivery = p.delivery(&queued.id).await;
    assert_eq!(delivery.status, DeliveryStatus::Succeeded);
    let attempts = p.attempts(&queued.id).await;
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].status_code, Some(200));
    assert_eq!(attempts[0].error, None);
    assert_eq!(attempts[0].started_at, START);
    assert!(p
        .metrics
        .render()
        .contains("fleethook_deliveries_total{outcome=\"succeeded\"} 1"));
}

#[tokio::test]
async fn signs_with_both_secrets_during_a_rotation() {
    let p = platform(true).await;
    let mut receiver = Receiver::start(Reply::status(204)).await;
    let mut webhook = p.webhook(WebhookKind::Dynamic, &receiver.url()).await;
    webhook.previous_secret = Some(OLD_SECRET.to_string());
    webhook.previous_secret_expires_at = Some(START + 24 * 3_600_000);
    p.store.update_webhook(&webhook).await.unwrap();
    let queued = p
        .enqueue(&webhook, DeliveryPurpose::Event, &scheduled_body(&webhook))
        .await;

    assert_eq!(p.dispatcher.run_due().await, 1);
    let got = receiver.next().await;
    let ts = header(&got, "webhook-timestamp");
    let entries: Vec<&str> = header(&got, "webhook-signature").split(' ').collect();
    assert_eq!(entries.len(), 2, "{entries:?}");
    assert!(entries
        .contains(&expected_standard_entry(SECRET, &queued.event_id, ts, &got.body).as_str()));
    assert!(entries
        .contains(&expected_standard_entry(OLD_SECRET, &queued.event_id, ts, &got.body).as_str()));
}

/// Fails every attempt and walks the retry road on the manual clock: just before each planned
/// retry nothing is sent, at it exactly one attempt is. Returns the delivery's id.
async fn walk_failing_road(
    p: &Platform,
    receiver: &mut Receiver,
    webhook: &Webhook,
    body: &str,
    waits_s: &[i64],
) -> String {
    let queued = p.enqueue(webhook, DeliveryPurpose::Event, body).await;
    assert_eq!(p.dispatcher.run_due().await, 1);
    assert_eq!(receiver.drain().len(), 1);
    for (retry, wait_s) in waits_s.iter().enumerate() {
        let last_attempt = p.clock.now_ms();
        let delivery = p.delivery(&queued.id).await;
        assert_eq!(
            delivery.status,
            DeliveryStatus::Pending,
            "retry {}",
            retry + 1
        );
        let next = delivery.next_attempt_at.expect("a retry is planned");
        let planned = next - last_attempt;
        let (low, high) = (wait_s * 900, wait_s * 1100);
        assert!(
            (low..=high).contains(&planned),
            "retry {}: waited {planned} ms, planned {wait_s} s ±10 %",
            retry + 1
        );

        p.set_clock(next - 1);
        assert_eq!(
            p.dispatcher.run_due().await,
            0,
            "retry {} came early",
            retry + 1
        );
        assert!(receiver.drain().is_empty());
        p.set_clock(next);
        assert_eq!(
            p.dispatcher.run_due().await,
            1,
            "retry {} did not come",
            retry + 1
        );
        assert_eq!(receiver.drain().len(), 1);
    }
    // The road is over: nothing more, even much later.
    p.set_clock(p.clock.now_ms() + 24 * 3_600_000);
    assert_eq!(p.dispatcher.run_due().await, 0);
    assert!(receiver.drain().is_empty());
    assert_eq!(p.attempts(&queued.id).await.len(), waits_s.len() + 1);
    queued.id
}

#[tokio::test]
async fn failing_scheduled_webhook_retries_five_times_then_is_disabled() {
    let p = platform(true).await;
    let mut receiver = Receiver::start(Reply::status(500)).await;
    let webhook = p.webhook(WebhookKind::Scheduled, &receiver.url()).await;
    let id = walk_failing_road(
        &p,
        &mut receiver,
        &webhook,
        &scheduled_body(&webhook),
        &[20, 40, 80, 160, 300],
    )
    .await;

    let delivery = p.delivery(&id).await;
    assert_eq!(delivery.status, DeliveryStatus::Failed);
    assert_eq!(delivery.last_error.as_deref(), Some("HTTP 500"));
    let webhook = p.webhook_now(&webhook.id).await;
    assert_eq!(webhook.status, WebhookStatus::Disabled);
    assert_eq!(
        webhook.disabled_reason.as_deref(),
        Some("retries exhausted: last attempt HTTP 500")
    );
    let text = p.metrics.render();
    assert!(
        text.contains("fleethook_deliveries_total{outcome=\"retrying\"} 5"),
        "{text}"
    );
    assert!(
        text.contains("fleethook_deliveries_total{outcome=\"failed\"} 1"),
        "{text}"
    );
}

#[tokio::test]
async fn failing_dynamic_webhook_retries_six_times_doubling_then_is_disabled() {
    let p = platform(true).await;
    let mut receiver = Receiver::start(Reply::status(503)).await;
    let webhook = p.webhook(WebhookKind::Dynamic, &receiver.url()).await;
    let id = walk_failing_road(
        &p,
        &mut receiver,
        &webhook,
        &scheduled_body(&webhook),
        &[10, 20, 40, 80, 160, 320],
    )
    .await;
    assert_eq!(p.delivery(&id).await.status, DeliveryStatus::Failed);
    assert_eq!(
        p.webhook_now(&webhook.id).await.status,
        WebhookStatus::Disabled
    );
}

#[tokio::test]
async fn test_payloads_take_the_same_road_and_disable_too() {
    let p = platform(true).await;
    let mut receiver = Receiver::start(Reply::status(500)).await;
    let webhook = p.webhook(WebhookKind::EventBased, &receiver.url()).await;
    let queued = p
        .enqueue(&webhook, DeliveryPurpose::Test, &scheduled_body(&webhook))
        .await;
    for wait_s in [10, 20, 40, 80, 160, 320] {
        assert_eq!(p.dispatcher.run_due().await, 1);
        let next = p.delivery(&queued.id).await.next_attempt_at.unwrap();
        assert!((wait_s * 900..=wait_s * 1100).contains(&(next - p.clock.now_ms())));
        p.set_clock(next);
    }
    assert_eq!(p.dispatcher.run_due().await, 1);
    assert_eq!(receiver.drain().len(), 7);
    assert_eq!(
        p.webhook_now(&webhook.id).await.status,
        WebhookStatus::Disabled
    );
}

#[tokio::test]
async fn vehicle_state_event_is_dropped_after_three_retries_and_the_webhook_stays_enabled() {
    let p = platform(true).await;
    let mut receiver = Receiver::start(Reply::status(500)).await;
    let webhook = p.webhook(WebhookKind::VehicleState, &receiver.url()).await;
    let event_id = fleethook::ids::new_id();
    let body = vehicle_state_body(&webhook, &event_id);
    let queued = p
        .enqueue_event(
            &webhook,
            DeliveryPurpose::Event,
            &event_id,
            &body,
            Some(START),
        )
        .await;
    let mut seen = Vec::new();
    assert_eq!(p.dispatcher.run_due().await, 1);
    seen.extend(receiver.drain());
    for wait_s in [25, 50, 100] {
        let last_attempt = p.clock.now_ms();
        let next = p.delivery(&queued.id).await.next_attempt_at.unwrap();
        assert!((wait_s * 900..=wait_s * 1100).contains(&(next - last_attempt)));
        p.set_clock(next);
        assert_eq!(p.dispatcher.run_due().await, 1);
        seen.extend(receiver.drain());
    }
    p.set_clock(p.clock.now_ms() + 3_600_000);
    assert_eq!(p.dispatcher.run_due().await, 0);

    let delivery = p.delivery(&queued.id).await;
    assert_eq!(delivery.status, DeliveryStatus::Failed);
    assert_eq!(p.attempts(&queued.id).await.len(), 4);
    let webhook_now = p.webhook_now(&webhook.id).await;
    assert_eq!(webhook_now.status, WebhookStatus::Enabled);
    assert_eq!(webhook_now.disabled_reason, None);

    // Each attempt of the v4 event: the same eventId and webhook-id, a fresh deliveryId.
    assert_eq!(seen.len(), 4);
    let mut delivery_ids = Vec::new();
    for r in &seen {
        let body: Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(body["eventId"], queued.event_id.as_str());
        assert_eq!(header(r, "webhook-id"), queued.event_id);
        assert_eq!(header(r, "sc-signature"), expected_sc_signature(&r.body));
        delivery_ids.push(body["meta"]["deliveryId"].as_str().unwrap().to_string());
    }
    delivery_ids.sort();
    delivery_ids.dedup();
    assert_eq!(
        delivery_ids.len(),
        4,
        "every attempt carries its own deliveryId"
    );
    assert!(!delivery_ids.contains(&"placeholder".to_string()));
}

#[tokio::test]
async fn gone_disables_the_webhook_at_once_and_nothing_more_is_sent() {
    let p = platform(true).await;
    let mut receiver = Receiver::start(Reply::status(410)).await;
    let webhook = p.webhook(WebhookKind::Scheduled, &receiver.url()).await;
    let first = p
        .enqueue(&webhook, DeliveryPurpose::Event, &scheduled_body(&webhook))
        .await;

    assert_eq!(p.dispatcher.run_due().await, 1);
    assert_eq!(receiver.drain().len(), 1);
    assert_eq!(p.delivery(&first.id).await.status, DeliveryStatus::Failed);
    let disabled = p.webhook_now(&webhook.id).await;
    assert_eq!(disabled.status, WebhookStatus::Disabled);
    assert_eq!(
        disabled.disabled_reason.as_deref(),
        Some("callback answered 410 Gone")
    );

    // Nothing but the challenge goes to a webhook that is not enabled.
    receiver.answer(Reply::status(200));
    let second = p
        .enqueue(&webhook, DeliveryPurpose::Event, &scheduled_body(&webhook))
        .await;
    assert_eq!(p.dispatcher.run_due().await, 1);
    assert!(receiver.drain().is_empty());
    let second = p.delivery(&second.id).await;
    assert_eq!(second.status, DeliveryStatus::Failed);
    assert_eq!(second.last_error.as_deref(), Some("webhook is disabled"));
    assert!(p.attempts(&second.id).await.is_empty());
}

#[tokio::test]
async fn a_redirect_is_not_followed_and_counts_as_a_failure() {
    let p = platform(true).await;
    let mut elsewhere = Receiver::start(Reply::status(200)).await;
    let mut receiver = Receiver::start(Reply {
        status: 302,
        headers: vec![("location", elsewhere.url())],
        body: String::new(),
    })
    .await;
    let webhook = p.webhook(WebhookKind::Scheduled, &receiver.url()).await;
    let queued = p
        .enqueue(&webhook, DeliveryPurpose::Event, &scheduled_body(&webhook))
        .await;

    assert_eq!(p.dispatcher.run_due().await, 1);
    assert_eq!(receiver.drain().len(), 1);
    assert!(elsewhere.drain().is_empty(), "the redirect was followed");
    let delivery = p.delivery(&queued.id).await;
    assert_eq!(delivery.status, DeliveryStatus::Pending);
    assert!(delivery.next_attempt_at.unwrap() > START);
    let attempts = p.attempts(&queued.id).await;
    assert_eq!(attempts[0].status_code, Some(302));
    let error = attempts[0].error.clone().unwrap();
    assert!(
        error.contains("redirect to") && error.contains("not followed"),
        "{error}"
    );
}

#[tokio::test]
async fn loopback_callbacks_are_refused_unless_private_callbacks_are_allowed() {
    let p = platform(false).await;
    let mut receiver = Receiver::start(Reply::status(200)).await;
    let literal = p.webhook(WebhookKind::VehicleState, &receiver.url()).await;
    let by_name = p
        .webhook(
            WebhookKind::VehicleState,
            &format!("http://localhost:{}/hook", receiver.addr.port()),
        )
        .await;
    let a = p
        .enqueue(
            &literal,
            DeliveryPurpose::Event,
            &vehicle_state_body(&literal, "e1"),
        )
        .await;
    let b = p
        .enqueue(
            &by_name,
            DeliveryPurpose::Event,
            &vehicle_state_body(&by_name, "e2"),
        )
        .await;

    assert_eq!(p.dispatcher.run_due().await, 2);
    assert!(
        receiver.drain().is_empty(),
        "a private callback was reached"
    );
    for (id, needle) in [(&a.id, "127.0.0.1"), (&b.id, "resolves to")] {
        let attempts = p.attempts(id).await;
        assert_eq!(attempts.len(), 1);
        assert_eq!(attempts[0].status_code, None);
        let error = attempts[0].error.clone().unwrap();
        assert!(error.contains(needle), "{error}");
        // Treated like a network failure: the retry road goes on.
        assert_eq!(p.delivery(id).await.status, DeliveryStatus::Pending);
    }

    // The same receiver is reachable when private callbacks are allowed.
    let open = platform(true).await;
    let webhook = open
        .webhook(WebhookKind::VehicleState, &receiver.url())
        .await;
    open.enqueue(
        &webhook,
        DeliveryPurpose::Event,
        &vehicle_state_body(&webhook, "e3"),
    )
    .await;
    assert_eq!(open.dispatcher.run_due().await, 1);
    assert_eq!(receiver.drain().len(), 1);
}

#[tokio::test]
async fn retry_after_is_honoured_on_429_and_capped_at_twice_the_plan() {
    let p = platform(true).await;
    let mut receiver = Receiver::start(Reply {
        status: 429,
        headers: vec![("retry-after", "30".into())],
        body: String::new(),
    })
    .await;
    let webhook = p.webhook(WebhookKind::Scheduled, &receiver.url()).await;
    let queued = p
        .enqueue(&webhook, DeliveryPurpose::Event, &scheduled_body(&webhook))
        .await;

    // Planned 20 s ±10 %; the receiver asks for 30 s, within twice the plan: honoured exactly.
    assert_eq!(p.dispatcher.run_due().await, 1);
    let next = p.delivery(&queued.id).await.next_attempt_at.unwrap();
    assert_eq!(next - p.clock.now_ms(), 30_000);

    // Planned 40 s ±10 %; an hour is asked for, twice the plan is granted.
    receiver.answer(Reply {
        status: 503,
        headers: vec![("retry-after", "3600".into())],
        body: String::new(),
    });
    p.set_clock(next);
    assert_eq!(p.dispatcher.run_due().await, 1);
    let wait = p.delivery(&queued.id).await.next_attempt_at.unwrap() - p.clock.now_ms();
    assert!((72_000..=88_000).contains(&wait), "{wait}");

    // Retry-After on a 500 is not honoured: the plan (80 s ±10 %) stands.
    receiver.answer(Reply {
        status: 500,
        headers: vec![("retry-after", "1".into())],
        body: String::new(),
    });
    p.set_clock(p.clock.now_ms() + wait);
    assert_eq!(p.dispatcher.run_due().await, 1);
    let wait = p.delivery(&queued.id).await.next_attempt_at.unwrap() - p.clock.now_ms();
    assert!((72_000..=88_000).contains(&wait), "{wait}");
    assert_eq!(receiver.drain().len(), 3);
}

#[tokio::test]
async fn verification_succeeds_only_with_the_right_challenge() {
    let p = platform(true).await;
    let mut receiver = Receiver::start(Reply::status(200)).await;
    let webhook = p
        .webhook_with(
            WebhookKind::Scheduled,
            &receiver.url(),
            WebhookStatus::Unverified,
        )
        .await;
    let challenge = "3f1c0e";
    let expected = hex::encode(hmac_sha256(AMT.as_bytes(), challenge.as_bytes()));
    let verify_body =
        json!({"version":"2.0","webhookId":webhook.id,"eventName":"verify","payload":{"challenge":challenge}}).to_string();

    let cases = [
        (
            Reply {
                status: 200,
                headers: vec![],
                body: json!({"challenge": expected}).to_string(),
            },
            None,
        ),
        (
            Reply {
                status: 200,
                headers: vec![],
                body: json!({"challenge": "beef"}).to_string(),
            },
            Some(format!("expected challenge {expected}, received beef")),
        ),
        (
            Reply {
                status: 200,
                headers: vec![],
                body: "ok".into(),
            },
            Some("response is not JSON".to_string()),
        ),
        (
            Reply {
                status: 500,
                headers: vec![],
                body: String::new(),
            },
            Some("HTTP 500".to_string()),
        ),
        (
            Reply {
                status: 410,
                headers: vec![],
                body: String::new(),
            },
            Some("HTTP 410".to_string()),
        ),
    ];
    for (reply, error) in cases {
        receiver.answer(reply);
        let queued = p
            .enqueue(&webhook, DeliveryPurpose::Verify, &verify_body)
            .await;
        // Verification deliveries are never claimed by the loop: only the caller attempts them.
        assert_eq!(p.dispatcher.run_due().await, 0);
        let report = p
            .dispatcher
            .attempt_now(&p.app.id, &queued.id, Some(&expected))
            .await
            .unwrap();
        assert_eq!(receiver.next().await.body, verify_body);
        assert_eq!(report.attempt.error, error);
        let delivery = p.delivery(&queued.id).await;
        if error.is_none() {
            assert_eq!(report.outcome, Outcome::Succeeded);
            assert_eq!(delivery.status, DeliveryStatus::Succeeded);
        } else {
            assert_eq!(report.outcome, Outcome::Failed);
            assert_eq!(delivery.status, DeliveryStatus::Failed);
        }
        // Never retried, never disabling.
        assert_eq!(
            p.webhook_now(&webhook.id).await.status,
            WebhookStatus::Unverified
        );
    }
    p.set_clock(START + 3_600_000);
    assert_eq!(p.dispatcher.run_due().await, 0);
    assert!(receiver.drain().is_empty());
}

#[tokio::test]
async fn a_manual_retry_is_one_attempt_that_never_disables() {
    let p = platform(true).await;
    let mut receiver = Receiver::start(Reply::status(410)).await;
    let webhook = p.webhook(WebhookKind::Dynamic, &receiver.url()).await;
    let queued = p
        .enqueue_at(
            &webhook,
            DeliveryPurpose::Event,
            &scheduled_body(&webhook),
            None,
        )
        .await;

    let report = p
        .dispatcher
        .attempt_now(&p.app.id, &queued.id, None)
        .await
        .unwrap();
    assert_eq!(receiver.drain().len(), 1);
    assert_eq!(report.outcome, Outcome::Failed);
    assert_eq!(report.attempt.status_code, Some(410));
    assert_eq!(
        p.webhook_now(&webhook.id).await.status,
        WebhookStatus::Enabled
    );
    assert_eq!(p.delivery(&queued.id).await.status, DeliveryStatus::Failed);
    p.set_clock(START + 3_600_000);
    assert_eq!(
        p.dispatcher.run_due().await,
        0,
        "a manual retry scheduled more retries"
    );

    receiver.answer(Reply {
        status: 200,
        headers: vec![],
        body: "thanks".into(),
    });
    let report = p
        .dispatcher
        .attempt_now(&p.app.id, &queued.id, None)
        .await
        .unwrap();
    assert_eq!(report.outcome, Outcome::Succeeded);
    assert_eq!(report.response_body.as_deref(), Some("thanks"));
    assert_eq!(report.attempt.number, 2);
    assert_eq!(
        p.delivery(&queued.id).await.status,
        DeliveryStatus::Succeeded
    );
    assert_eq!(receiver.drain().len(), 1);

    // A manual retry to a disabled webhook sends nothing and leaves the log as it was.
    let mut disabled = p.webhook_now(&webhook.id).await;
    disabled.status = WebhookStatus::Disabled;
    p.store.update_webhook(&disabled).await.unwrap();
    let err = p
        .dispatcher
        .attempt_now(&p.app.id, &queued.id, None)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            DispatchError::WebhookNotEnabled(WebhookStatus::Disabled)
        ),
        "{err}"
    );
    assert!(receiver.drain().is_empty());
    assert_eq!(
        p.delivery(&queued.id).await.status,
        DeliveryStatus::Succeeded
    );

    let missing = p
        .dispatcher
        .attempt_now(&p.app.id, "no-such-delivery", None)
        .await
        .unwrap_err();
    assert!(matches!(missing, DispatchError::NotFound(_)), "{missing}");
}

/// A listener that accepts connections and never answers.
async fn black_hole() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    (addr, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_endpoint_does_not_delay_a_healthy_one() {
    let p = platform_with(DispatcherSettings {
        concurrency: 8,
        per_webhook_in_flight: 4,
        allow_private: true,
        ..DispatcherSettings::default()
    })
    .await;
    let (dead_addr, black_hole) = black_hole().await;
    // A port that was bound and let go: connections are refused.
    let refused_addr = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let dead = p
        .webhook(WebhookKind::Scheduled, &format!("http://{dead_addr}/hook"))
        .await;
    let refused = p
        .webhook(
            WebhookKind::Scheduled,
            &format!("http://{refused_addr}/hook"),
        )
        .await;
    let mut healthy = Receiver::start(Reply::status(200)).await;
    let good = p.webhook(WebhookKind::VehicleState, &healthy.url()).await;
    // The dead endpoint's backlog is older, so it comes first in every claim.
    p.enqueue_backlog(&dead, 20).await;
    p.enqueue_backlog(&refused, 20).await;
    let (stop, shutdown) = watch::channel(false);
    let started = Instant::now();
    let run = tokio::spawn(p.dispatcher.clone().run(shutdown));

    for i in 0..5 {
        let queued = p
            .enqueue(
                &good,
                DeliveryPurpose::Event,
                &vehicle_state_body(&good, &format!("e{i}")),
            )
            .await;
        p.dispatcher.wake();
        let got = healthy.next().await;
        assert_eq!(header(&got, "webhook-id"), queued.event_id);
    }
    // The dead endpoint's attempts time out only after 15 s; the healthy one did not wait.
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );

    let _ = stop.send(true);
    // In-flight attempts to the black hole would take their full timeout; don't wait for them.
    run.abort();
    black_hole.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hanging_endpoints_together_cannot_fill_every_slot() {
    // 8 slots, a quarter of them (2) for slow webhooks; each webhook may hold 8, so the cap
    // alone would let two hanging endpoints take every slot.
    let p = platform_with(DispatcherSettings {
        concurrency: 8,
        per_webhook_in_flight: 8,
        allow_private: true,
        ..DispatcherSettings::default()
    })
    .await;
    let (dead_addr, black_hole) = black_hole().await;
    let mut dead = Vec::new();
    for n in 0..2 {
        let webhook = p
            .webhook(
                WebhookKind::Scheduled,
                &format!("http://{dead_addr}/hook/{n}"),
            )
            .await;
        p.enqueue(&webhook, DeliveryPurpose::Event, &scheduled_body(&webhook))
            .await;
        dead.push(webhook);
    }
    let (stop, shutdown) = watch::channel(false);
    let run = tokio::spawn(p.dispatcher.clone().run(shutdown));
    // Both first attempts hang past the slow mark: the two slow webhooks hold their budget.
    tokio::time::sleep(Duration::from_millis(1_300)).await;

    // An older backlog for both, then one delivery to a healthy endpoint.
    for webhook in &dead {
        p.enqueue_backlog(webhook, 10).await;
    }
    let mut healthy = Receiver::start(Reply::status(200)).await;
    let good = p.webhook(WebhookKind::VehicleState, &healthy.url()).await;
    let queued = p
        .enqueue(
            &good,
            DeliveryPurpose::Event,
            &vehicle_state_body(&good, "e1"),
        )
        .await;
    let woken = Instant::now();
    p.dispatcher.wake();
    let got = tokio::time::timeout(Duration::from_secs(5), healthy.next())
        .await
        .expect("the healthy endpoint is not kept waiting for the hanging ones' timeouts");
    assert_eq!(header(&got, "webhook-id"), queued.event_id);
    assert!(woken.elapsed() < Duration::from_secs(5));

    let _ = stop.send(true);
    // In-flight attempts to the black hole would take their full timeout; don't wait for them.
    run.abort();
    black_hole.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finished_attempt_is_recorded_while_hanging_ones_hold_the_slots() {
    // 16 slots; claims wait until 2 are free while more are busy, and completions wait for
    // the claim. Fifteen hanging attempts and one fast one: when the fast one ends, one slot
    // is free and no claim comes until the hanging ones time out (15 s). Its completion must
    // not wait for them.
    let p = platform_with(DispatcherSettings {
        concurrency: 16,
        per_webhook_in_flight: 16,
        allow_private: true,
        ..DispatcherSettings::default()
    })
    .await;
    let (dead_addr, black_hole) = black_hole().await;
    for n in 0..3 {
        let webhook = p
            .webhook(
                WebhookKind::Scheduled,
                &format!("http://{dead_addr}/hook/{n}"),
            )
            .await;
        p.enqueue_backlog(&webhook, 5).await;
    }
    let mut healthy = Receiver::start(Reply::status(200)).await;
    let good = p.webhook(WebhookKind::VehicleState, &healthy.url()).await;
    let queued = p
        .enqueue(
            &good,
            DeliveryPurpose::Event,
            &vehicle_state_body(&good, "e1"),
        )
        .await;
    let (stop, shutdown) = watch::channel(false);
    let run = tokio::spawn(p.dispatcher.clone().run(shutdown));
    healthy.next().await;

    let recorded = Instant::now();
    tokio::time::timeout(Duration::from_secs(5), async {
        while p.delivery(&queued.id).await.status != DeliveryStatus::Succeeded {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the finished attempt is recorded before the hanging ones time out");
    assert!(recorded.elapsed() < Duration::from_secs(5));
    assert_eq!(p.attempts(&queued.id).await.len(), 1);

    let _ = stop.send(true);
    // In-flight attempts to the black hole would take their full timeout; don't wait for them.
    run.abort();
    black_hole.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_loop_delivers_on_wake_and_retries_when_the_clock_reaches_the_retry() {
    let p = platform(true).await;
    let mut receiver = Receiver::start(Reply::status(500)).await;
    let webhook = p.webhook(WebhookKind::VehicleState, &receiver.url()).await;
    let (stop, shutdown) = watch::channel(false);
    let run = tokio::spawn(p.dispatcher.clone().run(shutdown));

    let queued = p
        .enqueue(
            &webhook,
            DeliveryPurpose::Event,
            &vehicle_state_body(&webhook, "e1"),
        )
        .await;
    p.dispatcher.wake();
    receiver.next().await;

    // The failure is written by the dispatcher's loop after the attempt; wait for the retry to
    // be planned (polling the store, not sleeping for platform time).
    let next = tokio::time::timeout(PATIENCE, async {
        loop {
            if let Some(next) = p
                .delivery(&queued.id)
                .await
                .next_attempt_at
                .filter(|at| *at > START)
            {
                return next;
            }
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the retry was never planned");
    receiver.answer(Reply::status(200));
    p.set_clock(next);
    receiver.next().await;

    let _ = stop.send(true);
    tokio::time::timeout(PATIENCE, run)
        .await
        .expect("run did not stop")
        .unwrap();
    assert_eq!(
        p.delivery(&queued.id).await.status,
        DeliveryStatus::Succeeded
    );
    assert_eq!(p.attempts(&queued.id).await.len(), 2);
}
