//! The store conformance suite: the behaviour every [`Store`](super::Store) implementation
//! must show, written against the trait alone so that SQLite and Postgres run the same checks.
//!
//! Each case is a `pub async fn(SharedStore)` that panics with a message naming the broken
//! behaviour. Cases create their own applications with fresh ids, so they can share one
//! database. The outbox calls (`claim_due`, `next_due_at`, `outbox_depth`,
//! `release_all_leases`) are global, though: the cases marked *exclusive outbox* first settle
//! every due delivery left by earlier cases and must not run concurrently with other cases on
//! the same database. [`run_all`] runs every case one after the other.
//!
//! An implementation's tests run each case on a fresh database with the crate-private
//! `conformance_cases!` macro, which hands the list of case names to a macro of the caller's
//! (see the tests of `store::sqlite`).

use std::collections::HashMap;
use std::sync::Arc;

use fleethook_wire::signal::SignalValue;
use serde_json::{json, Value};

use super::{
    ClaimRequest, DeliveryFilter, IngestApplied, IngestItem, SharedStore, SignalChange, StoreError,
};
use crate::clock::Millis;
use crate::model::*;
use crate::stats::{latency_bucket, AttemptCount, AttemptOutcome, MINUTE_MS};

/// Calls `$callback!(case, case, …)` with the name of every conformance case, so that a store's
/// tests can make one test per case and no case is forgotten.
macro_rules! conformance_cases {
    ($callback:ident) => {
        $callback!(
            apps_round_trip_and_duplicate_token_conflicts,
            app_token_can_be_replaced_but_not_taken,
            vehicles_round_trip_within_their_app,
            vehicle_vin_is_unique_within_an_app,
            vehicles_list_oldest_first_paged_and_by_user,
            delete_vehicle_removes_its_signals_errors_and_subscriptions,
            ingest_stores_signals_and_reports_only_value_changes,
            ingest_compares_bodies_by_value_not_by_text,
            ingest_with_a_code_twice_reports_it_once,
            ingest_errors_raise_resolve_and_clear,
            concurrent_ingests_report_each_change_exactly_once,
            rendered_ingest_enqueues_its_payloads_with_the_change,
            ingest_batch_applies_in_order_and_a_bad_item_fails_alone,
            ingest_batch_keeps_each_vehicles_order_among_others,
            webhooks_round_trip_update_and_stay_in_their_app,
            delete_webhook_fails_its_pending_deliveries_and_drops_subscriptions,
            subscriptions_subscribe_once_unsubscribe_once_and_page,
            subscribed_webhooks_many_matches_one_vehicle_at_a_time,
            bulk_create_and_subscribe_are_all_or_nothing_and_counted,
            schedule_page_reads_subscribers_by_id_with_their_signals,
            enqueue_many_stores_pending_deliveries,
            enqueue_many_is_all_or_nothing,
            claim_due_takes_due_unleased_deliveries_in_order,
            claim_due_leases_until_expiry_and_completion_releases,
            claim_due_skips_webhooks_at_their_cap,
            claim_due_takes_at_most_per_webhook_of_one_webhook,
            claim_one_claims_any_delivery_of_its_app,
            a_claim_after_a_manual_attempt_sees_what_it_changed,
            a_claim_carries_its_webhook_and_token_as_they_now_are,
            subscribed_webhooks_many_sees_webhooks_as_they_now_are,
            complete_many_records_attempts_and_outcomes,
            complete_many_applies_large_and_repeating_batches_in_order,
            complete_many_disables_a_webhook_once,
            complete_and_claim_records_then_claims_and_a_failed_write_spares_the_claim,
            retry_completion_never_revives_a_finished_delivery,
            next_due_at_and_outbox_depth_follow_pending_deliveries,
            release_all_leases_frees_claimed_deliveries,
            delivery_log_is_app_scoped_newest_first_and_filtered,
            attempt_stats_count_by_webhook_minute_outcome_and_latency,
            vehicle_deliveries_span_webhooks_newest_first_within_the_app,
        );
    };
}
// Only the stores' test modules name the macro by path; `run_all` sees it by textual scope.
#[cfg_attr(not(test), allow(unused_imports))]
pub(crate) use conformance_cases;

/// Runs every case, one after the other, on one store.
pub async fn run_all(store: SharedStore) {
    macro_rules! run {
        ($($case:ident),* $(,)?) => {
            $( $case(store.clone()).await; )*
        };
    }
    conformance_cases!(run);
}

// --- fixtures -----------------------------------------------------------------------------

const SOC: &str = "tractionbattery-stateofcharge";
const RANGE: &str = "tractionbattery-range";
const PLUGGED: &str = "charge-ischargingcableconnected";

fn fresh_id(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// 17 characters, unique enough for one test database.
fn fresh_vin() -> String {
    uuid::Uuid::new_v4()
        .simple()
        .to_string()
        .to_ascii_uppercase()[..17]
        .to_string()
}

pub(crate) async fn new_app(store: &SharedStore, name: &str) -> App {
    let app = App {
        id: fresh_id("app"),
        name: name.to_string(),
        management_token: fresh_id("amt"),
        created_at: 1_000,
    };
    store
        .create_app(&app)
        .await
        .expect("create_app of a fresh application");
    app
}

fn vehicle_of(app: &App, user: &str, created_at: Millis) -> Vehicle {
    Vehicle {
        id: fresh_id("veh"),
        app_id: app.id.clone(),
        user_id: user.to_string(),
        access_token: fresh_id("vat"),
        make: "TESLA".to_string(),
        model: "Model 3".to_string(),
        year: 2020,
        vin: fresh_vin(),
        mode: VehicleMode::Live,
        simulated: false,
        created_at,
    }
}

async fn new_vehicle(store: &SharedStore, app: &App, user: &str, created_at: Millis) -> Vehicle {
    let vehicle = vehicle_of(app, user, created_at);
    store
        .create_vehicle(&vehicle)
        .await
        .expect("create_vehicle of a fresh vehicle");
    vehicle
}

fn webhook_of(app: &App, status: WebhookStatus) -> Webhook {
    Webhook {
        id: fresh_id("wh"),
        app_id: app.id.clone(),
        name: "state changes".to_string(),
        kind: WebhookKind::VehicleState,
        callback_uri: "https://receiver.example/hook".to_string(),
        error_callback_uri: None,
        config: json!({"triggers": [SOC], "data": [RANGE]}),
        status,
        disabled_reason: None,
        signing_secret: fresh_id("whsec"),
        previous_secret: None,
        previous_secret_expires_at: None,
        max_payload_bytes: 50_000,
        created_at: 1_000,
        updated_at: 1_000,
    }
}

pub(crate) async fn new_webhook(store: &SharedStore, app: &App) -> Webhook {
    let webhook = webhook_of(app, WebhookStatus::Enabled);
    store
        .create_webhook(&webhook)
        .await
        .expect("create_webhook of a fresh webhook");
    webhook
}

pub(crate) fn delivery_for(
    webhook: &Webhook,
    next_attempt_at: Option<Millis>,
    created_at: Millis,
    vehicles: &[&str],
) -> NewDelivery {
    let id = fresh_id("dlv");
    NewDelivery {
        body: format!("{{\"eventId\":\"{id}\"}}"),
        id,
        app_id: webhook.app_id.clone(),
        webhook_id: webhook.id.clone(),
        event_id: fresh_id("evt"),
        purpose: if next_attempt_at.is_some() {
            DeliveryPurpose::Event
        } else {
            DeliveryPurpose::Verify
        },
        target_uri: webhook.callback_uri.clone(),
        event_type: "VEHICLE_STATE".to_string(),
        vehicle_ids: vehicles.iter().map(|v| v.to_string()).collect(),
        next_attempt_at,
        created_at,
    }
}

pub(crate) async fn enqueue(store: &SharedStore, deliveries: &[NewDelivery]) {
    store
        .enqueue_many(deliveries)
        .await
        .expect("enqueue_many of fresh deliveries");
}

/// The delivery as it must read right after `enqueue_many`.
fn as_enqueued(new: &NewDelivery) -> Delivery {
    Delivery {
        id: new.id.clone(),
        app_id: new.app_id.clone(),
        webhook_id: new.webhook_id.clone(),
        event_id: new.event_id.clone(),
        purpose: new.purpose,
        target_uri: new.target_uri.clone(),
        body: new.body.clone(),
        event_type: new.event_type.clone(),
        vehicle_ids: new.vehicle_ids.clone(),
        status: DeliveryStatus::Pending,
        attempt_count: 0,
        next_attempt_at: new.next_attempt_at,
        last_error: None,
        created_at: new.created_at,
        updated_at: new.created_at,
    }
}

fn signal(code: &str, body: Value, retrieved_at: Millis) -> SignalValue {
    SignalValue {
        code: code.to_string(),
        body,
        oem_updated_at: None,
        retrieved_at,
    }
}

fn vehicle_error(
    error_type: &str,
    code: &str,
    description: &str,
    signals: &[&str],
) -> VehicleErrorState {
    VehicleErrorState {
        error_type: error_type.to_string(),
        code: code.to_string(),
        description: Some(description.to_string()),
        signals: signals.iter().map(|s| s.to_string()).collect(),
    }
}

fn attempt(
    delivery_id: &str,
    number: i64,
    status_code: Option<i64>,
    error: Option<&str>,
) -> Attempt {
    Attempt {
        delivery_id: delivery_id.to_string(),
        number,
        wire_delivery_id: fresh_id("wire"),
        started_at: 1_000 + number,
        status_code,
        duration_ms: 42,
        error: error.map(str::to_string),
        response_body: status_code.map(|code| format!("answered {code}")),
    }
}

pub(crate) fn completion(delivery_id: &str, outcome: Outcome, at: Millis) -> Completion {
    Completion {
        delivery_id: delivery_id.to_string(),
        attempt: None,
        outcome,
        last_error: None,
        disable_webhook: None,
        at,
    }
}

async fn complete(store: &SharedStore, completions: &[Completion]) {
    store
        .complete_many(completions)
        .await
        .expect("complete_many");
}

async fn delivery(store: &SharedStore, app: &App, id: &str) -> Delivery {
    store
        .delivery(&app.id, id)
        .await
        .expect("delivery")
        .unwrap_or_else(|| panic!("delivery {id} should exist in application {}", app.id))
}

async fn claim(
    store: &SharedStore,
    now: Millis,
    lease_now: Millis,
    lease_until: Millis,
    limit: i64,
) -> Vec<String> {
    store
        .claim_due(now, lease_now, lease_until, limit, i64::MAX, &[])
        .await
        .expect("claim_due")
        .into_iter()
        .map(|c| c.delivery.id)
        .collect()
}

/// Settles every claimable delivery (any due time, any lease) as failed, for the cases that
/// need the outbox to themselves.
async fn drain_outbox(store: &SharedStore) {
    loop {
        let claimed = store
            .claim_due(Millis::MAX, Millis::MAX, Millis::MAX, 500, i64::MAX, &[])
            .await
            .expect("claim_due while draining the outbox");
        if claimed.is_empty() {
            return;
        }
        let settled: Vec<Completion> = claimed
            .iter()
            .map(|c| completion(&c.delivery.id, Outcome::Failed, 0))
            .collect();
        complete(store, &settled).await;
    }
}

fn assert_conflict<T: std::fmt::Debug>(result: Result<T, StoreError>, what: &str) {
    match result {
        Err(StoreError::Conflict(_)) => {}
        other => panic!("{what} should fail with Conflict, got {other:?}"),
    }
}

fn change<'a>(applied: &'a IngestApplied, code: &str) -> Option<&'a SignalChange> {
    applied.changes.iter().find(|c| c.code == code)
}

// --- applications ---------------------------------------------------------------------------

/// Applications read back by id, by token and in the list; a taken token or id is a conflict.
pub async fn apps_round_trip_and_duplicate_token_conflicts(store: SharedStore) {
    let app = new_app(&store, "first").await;
    assert_eq!(
        store.app(&app.id).await.expect("app"),
        Some(app.clone()),
        "app by id"
    );
    assert_eq!(
        store
            .app_by_token(&app.management_token)
            .await
            .expect("app_by_token"),
        Some(app.clone()),
        "app by management token"
    );
    assert_eq!(
        store.app(&fresh_id("app")).await.expect("app"),
        None,
        "unknown app id"
    );
    assert_eq!(
        store
            .app_by_token(&fresh_id("amt"))
            .await
            .expect("app_by_token"),
        None,
        "unknown management token"
    );
    let apps = store.list_apps().await.expect("list_apps");
    assert!(
        apps.contains(&app),
        "list_apps should contain the new application"
    );

    let same_token = App {
        id: fresh_id("app"),
        name: "second".to_string(),
        management_token: app.management_token.clone(),
        created_at: 2_000,
    };
    assert_conflict(
        store.create_app(&same_token).await,
        "an application with a taken token",
    );
    let same_id = App {
        id: app.id.clone(),
        name: "third".to_string(),
        management_token: fresh_id("amt"),
        created_at: 2_000,
    };
    assert_conflict(
        store.create_app(&same_id).await,
        "an application with a taken id",
    );
    assert_eq!(
        store.app(&app.id).await.expect("app"),
        Some(app),
        "a conflict changes nothing"
    );
}

/// `set_app_token` replaces the token, and the old one stops authenticating at once even
/// right after it did (a store may cache lookups); another application's token is a conflict.
pub async fn app_token_can_be_replaced_but_not_taken(store: SharedStore) {
    let app = new_app(&store, "rotating").await;
    let other = new_app(&store, "other").await;
    assert_eq!(
        store
            .app_by_token(&app.management_token)
            .await
            .expect("app_by_token"),
        Some(app.clone())
    );
    let token = fresh_id("amt");
    store
        .set_app_token(&app.id, &token)
        .await
        .expect("set_app_token");
    let expected = App {
        management_token: token.clone(),
        ..app.clone()
    };
    assert_eq!(
        store.app_by_token(&token).await.expect("app_by_token"),
        Some(expected.clone())
    );
    assert_eq!(
        store
            .app_by_token(&app.management_token)
            .await
            .expect("app_by_token"),
        None,
        "the replaced token must no longer authenticate"
    );
    assert_conflict(
        store.set_app_token(&app.id, &other.management_token).await,
        "taking another application's token",
    );
    assert_eq!(store.app(&app.id).await.expect("app"), Some(expected));
}

// --- vehicles -------------------------------------------------------------------------------

/// A vehicle reads back in its application, by its access token, and never in another app.
pub async fn vehicles_round_trip_within_their_app(store: SharedStore) {
    let app = new_app(&store, "fleet").await;
    let other = new_app(&store, "other fleet").await;
    let vehicle = Vehicle {
        mode: VehicleMode::Simulated,
        simulated: true,
        ..vehicle_of(&app, "user-1", 5_000)
    };
    store
        .create_vehicle(&vehicle)
        .await
        .expect("create_vehicle");
    assert_eq!(
        store.vehicle(&app.id, &vehicle.id).await.expect("vehicle"),
        Some(vehicle.clone()),
        "vehicle by id in its application"
    );
    assert_eq!(
        store
            .vehicle(&other.id, &vehicle.id)
            .await
            .expect("vehicle"),
        None,
        "a vehicle must be invisible to another application"
    );
    assert_eq!(
        store
            .vehicle_by_token(&vehicle.access_token)
            .await
            .expect("vehicle_by_token"),
        Some(vehicle.clone()),
        "vehicle by access token"
    );
    assert_eq!(
        store
            .vehicle_by_token(&fresh_id("vat"))
            .await
            .expect("vehicle_by_token"),
        None
    );
    let same_id = Vehicle {
        id: vehicle.id.clone(),
        ..vehicle_of(&app, "user-2", 6_000)
    };
    assert_conflict(
        store.create_vehicle(&same_id).await,
        "a vehicle with a taken id",
    );
}

/// A VIN is unique within one application, not across applications.
pub async fn vehicle_vin_is_unique_within_an_app(store: SharedStore) {
    let app = new_app(&store, "fleet").await;
    let other = new_app(&store, "other fleet").await;
    let first = new_vehicle(&store, &app, "user-1", 1_000).await;
    let same_vin = Vehicle {
        vin: first.vin.clone(),
        ..vehicle_of(&app, "user-2", 2_000)
    };
    assert_conflict(
        store.create_vehicle(&same_vin).await,
        "a second vehicle with one VIN in one app",
    );
    let elsewhere = Vehicle {
        vin: first.vin.clone(),
        ..vehicle_of(&other, "user-1", 2_000)
    };
    store
        .create_vehicle(&elsewhere)
        .await
        .expect("the same VIN in another application is allowed");
}

/// Vehicles list oldest first (ties in insertion order), paged, with the total, by user.
pub async fn vehicles_list_oldest_first_paged_and_by_user(store: SharedStore) {
    let app = new_app(&store, "fleet").await;
    let other = new_app(&store, "other fleet").await;
    let v0 = new_vehicle(&store, &app, "alice", 3_000).await;
    let v1 = new_vehicle(&store, &app, "bob", 1_000).await;
    let v2 = new_vehicle(&store, &app, "alice", 2_000).await;
    let v3 = new_vehicle(&store, &app, "bob", 2_000).await;
    let v4 = new_vehicle(&store, &app, "alice", 4_000).await;
    new_vehicle(&store, &other, "alice", 500).await;

    let page = |limit, offset| Page { limit, offset };
    let list = |user: Option<&'static str>, p: Page| {
        let store = store.clone();
        let app_id = app.id.clone();
        async move {
            store
                .list_vehicles(&app_id, user, p)
                .await
                .expect("list_vehicles")
        }
    };
    assert_eq!(
        list(None, page(2, 0)).await,
        (vec![v1.clone(), v2.clone()], 5),
        "first page"
    );
    assert_eq!(
        list(None, page(2, 2)).await,
        (vec![v3.clone(), v0.clone()], 5),
        "second page"
    );
    assert_eq!(
        list(None, page(2, 4)).await,
        (vec![v4.clone()], 5),
        "last page"
    );
    assert_eq!(
        list(None, page(2, 10)).await,
        (vec![], 5),
        "past the end: no rows, same total"
    );
    assert_eq!(
        list(Some("alice"), page(50, 0)).await,
        (vec![v2, v0, v4.clone()], 3),
        "one user's vehicles"
    );
    assert_eq!(
        list(Some("alice"), page(1, 2)).await,
        (vec![v4], 3),
        "one user's vehicles, paged"
    );
    assert_eq!(
        list(Some("nobody"), page(50, 0)).await,
        (vec![], 0),
        "a user without vehicles"
    );
}

/// Deleting a vehicle takes its signals, errors and subscriptions with it, and nothing else.
pub async fn delete_vehicle_removes_its_signals_errors_and_subscriptions(store: SharedStore) {
    let app = new_app(&store, "fleet").await;
    let other = new_app(&store, "other fleet").await;
    let webhook = new_webhook(&store, &app).await;
    let doomed = new_vehicle(&store, &app, "user", 1_000).await;
    let kept = new_vehicle(&store, &app, "user", 1_000).await;
    let errors = [vehicle_error(
        "COMPATIBILITY",
        "VEHICLE_NOT_CAPABLE",
        "no range",
        &[RANGE],
    )];
    for vehicle in [&doomed, &kept] {
        store
            .apply_ingest(
                &vehicle.id,
                &[signal(SOC, json!({"value": 50}), 10)],
                Some(&errors),
                10,
            )
            .await
            .expect("apply_ingest");
        assert!(store
            .subscribe(&webhook.id, &vehicle.id, 10)
            .await
            .expect("subscribe"));
    }

    assert!(
        !store
            .delete_vehicle(&other.id, &doomed.id)
            .await
            .expect("delete_vehicle"),
        "another application must not delete the vehicle"
    );
    assert!(store
        .vehicle(&app.id, &doomed.id)
        .await
        .expect("vehicle")
        .is_some());
    assert!(store
        .delete_vehicle(&app.id, &doomed.id)
        .await
        .expect("delete_vehicle"));
    assert_eq!(
        store.vehicle(&app.id, &doomed.id).await.expect("vehicle"),
        None
    );
    assert!(
        store.signals(&doomed.id).await.expect("signals").is_empty(),
        "signals must go"
    );
    assert!(
        store
            .vehicle_errors(&doomed.id)
            .await
            .expect("errors")
            .is_empty(),
        "errors must go"
    );
    let (subs, total) = store
        .subscriptions(&webhook.id, Page::default())
        .await
        .expect("subscriptions");
    assert_eq!(total, 1, "only the deleted vehicle's subscription must go");
    assert_eq!(subs[0].vehicle_id, kept.id);
    assert_eq!(
        store.signals(&kept.id).await.expect("signals").len(),
        1,
        "other vehicles keep signals"
    );
    assert_eq!(
        store.vehicle_errors(&kept.id).await.expect("errors").len(),
        1
    );
    assert!(
        !store
            .delete_vehicle(&app.id, &doomed.id)
            .await
            .expect("delete_vehicle"),
        "a second delete finds nothing"
    );
}

// --- signals --------------------------------------------------------------------------------

/// Ingest upserts every signal but reports a change only when the value differs.
/// `apply_ingest_rendered` hands the renderer what changed and the vehicle's signals after
/// the ingest, enqueues its payloads with the change, and does not call it when nothing
/// changed.
pub async fn rendered_ingest_enqueues_its_payloads_with_the_change(store: SharedStore) {
    let app = new_app(&store, "fleet").await;
    let vehicle = new_vehicle(&store, &app, "user", 1_000).await;
    let webhook = new_webhook(&store, &app).await;
    store
        .apply_ingest(
            &vehicle.id,
            &[signal(RANGE, json!({"unit": "km", "value": 300}), 10)],
            None,
            10,
        )
        .await
        .expect("apply_ingest");
    let calls = std::sync::atomic::AtomicUsize::new(0);
    let render = |applied: &IngestApplied, after: &HashMap<String, SignalValue>| {
        calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        assert_eq!(
            applied.changes.len(),
            1,
            "the renderer sees this ingest's changes"
        );
        assert_eq!(after.len(), 2, "and every signal of the vehicle after it");
        assert_eq!(after[SOC].body, json!({"unit": "percent", "value": 50}));
        vec![delivery_for(&webhook, Some(20), 20, &[&vehicle.id])]
    };
    let soc = signal(SOC, json!({"unit": "percent", "value": 50}), 20);
    let (applied, enqueued) = store
        .apply_ingest_rendered(&vehicle.id, std::slice::from_ref(&soc), None, 20, &render)
        .await
        .expect("apply_ingest_rendered");
    assert_eq!((applied.changes.len(), enqueued), (1, 1));
    let (log, total) = store
        .list_deliveries(
            &app.id,
            &webhook.id,
            &DeliveryFilter::default(),
            Page::default(),
        )
        .await
        .expect("list_deliveries");
    assert_eq!((total, log[0].status), (1, DeliveryStatus::Pending));
    // The same value again is no change: the renderer is not called and nothing is enqueued.
    let (applied, enqueued) = store
        .apply_ingest_rendered(&vehicle.id, &[soc], None, 30, &render)
        .await
        .expect("apply_ingest_rendered");
    assert_eq!((applied.changes.len(), enqueued), (0, 0));
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1);
}

pub async fn ingest_batch_applies_in_order_and_a_bad_item_fails_alone(store: SharedStore) {
    let app = new_app(&store, "fleet").await;
    let vehicle = new_vehicle(&store, &app, "user", 1_000).await;
    let webhook = new_webhook(&store, &app).await;
    let render = |applied: &IngestApplied, after: &HashMap<String, SignalValue>| {
        let value = after[SOC].body["value"].as_i64().expect("a value");
        assert_eq!(
            applied.changes[0].current["value"].as_i64(),
            Some(value),
            "the renderer sees the vehicle as this item leaves it"
        );
        vec![delivery_for(&webhook, Some(value), value, &[&vehicle.id])]
    };
    let soc = |value: i64| {
        [signal(
            SOC,
            json!({"unit": "percent", "value": value}),
            value,
        )]
    };
    let (fifty, sixty) = (soc(50), soc(60));
    let item = |vehicle_id, signals, now| IngestItem {
        vehicle_id,
        signals,
        errors: None,
        now,
        render: Some(&render),
    };
    let items = [
        item(vehicle.id.as_str(), &fifty[..], 50),
        item(vehicle.id.as_str(), &sixty[..], 60),
        item("no-such-vehicle", &fifty[..], 61),
        item(vehicle.id.as_str(), &sixty[..], 62),
    ];
    let results = store.apply_ingest_batch(&items).await;
    assert_eq!(results.len(), 4, "one result per item");
    let ok = |i: usize| -> (IngestApplied, usize) {
        match &results[i] {
            Ok(result) => result.clone(),
            Err(err) => panic!("item {i} of the batch failed: {err}"),
        }
    };
    assert_eq!(ok(0).0.changes[0].previous, None);
    assert_eq!(ok(0).1, 1);
    assert_eq!(
        ok(1).0.changes[0].previous,
        Some(json!({"unit": "percent", "value": 50})),
        "a later item sees what an earlier one of the batch wrote"
    );
    assert_eq!(ok(1).1, 1);
    assert!(results[2].is_err(), "an unknown vehicle's item fails");
    assert_eq!(
        (ok(3).0.changes.len(), ok(3).1),
        (0, 0),
        "the same value again is no change"
    );
    let (_, total) = store
        .list_deliveries(
            &app.id,
            &webhook.id,
            &DeliveryFilter::default(),
            Page::default(),
        )
        .await
        .expect("list_deliveries");
    assert_eq!(
        total, 2,
        "the good items' payloads are in the outbox, once each"
    );
    let after = store.signals(&vehicle.id).await.expect("signals");
    assert_eq!(after[SOC].body, json!({"unit": "percent", "value": 60}));

    // A batch with no bad item (a grouping store applies it as one group).
    let (seventy, eighty) = (soc(70), soc(80));
    let items = [
        item(vehicle.id.as_str(), &seventy[..], 70),
        item(vehicle.id.as_str(), &eighty[..], 80),
    ];
    let results = store.apply_ingest_batch(&items).await;
    let previous: Vec<_> = results
        .iter()
        .map(|r| {
            r.as_ref().expect("a good item").0.changes[0]
                .previous
                .clone()
        })
        .collect();
    assert_eq!(
        previous,
        vec![
            Some(json!({"unit": "percent", "value": 60})),
            Some(json!({"unit": "percent", "value": 70}))
        ]
    );
}

/// A batch that interleaves vehicles (a store may run different vehicles side by side): each
/// vehicle's items still apply in their order, and each result is its own item's.
pub async fn ingest_batch_keeps_each_vehicles_order_among_others(store: SharedStore) {
    let app = new_app(&store, "fleet").await;
    let mut vehicles = Vec::new();
    for user in ["a", "b", "c"] {
        vehicles.push(new_vehicle(&store, &app, user, 1_000).await);
    }
    let values: Vec<[SignalValue; 1]> = (0..12)
        .map(|i| {
            [signal(
                SOC,
                json!({"unit": "percent", "value": 10 + i}),
                100 + i,
            )]
        })
        .collect();
    // Vehicle i % 3 takes value 10 + i: each vehicle gets four rising values.
    let items: Vec<IngestItem<'_>> = values
        .iter()
        .enumerate()
        .map(|(i, signals)| IngestItem {
            vehicle_id: vehicles[i % 3].id.as_str(),
            signals,
            errors: None,
            now: 100 + i as i64,
            render: None,
        })
        .collect();
    let results = store.apply_ingest_batch(&items).await;
    assert_eq!(results.len(), items.len(), "one result per item");
    for (i, result) in results.iter().enumerate() {
        let (applied, _) = result.as_ref().expect("every item applies");
        let previous = (i >= 3).then(|| json!({"unit": "percent", "value": 10 + i - 3}));
        assert_eq!(
            applied.changes[0].previous, previous,
            "item {i} sees the item before it of the same vehicle"
        );
        assert_eq!(
            applied.changes[0].current,
            json!({"unit": "percent", "value": 10 + i})
        );
    }
    for (v, vehicle) in vehicles.iter().enumerate() {
        let after = store.signals(&vehicle.id).await.expect("signals");
        assert_eq!(
            after[SOC].body,
            json!({"unit": "percent", "value": 10 + 9 + v}),
            "the last item of each vehicle wins"
        );
    }
}

pub async fn ingest_stores_signals_and_reports_only_value_changes(store: SharedStore) {
    let app = new_app(&store, "fleet").await;
    let vehicle = new_vehicle(&store, &app, "user", 1_000).await;
    let soc = SignalValue {
        oem_updated_at: Some(15),
        ..signal(SOC, json!({"unit": "percent", "value": 78}), 20)
    };
    let range = signal(RANGE, json!({"unit": "km", "value": 300.5}), 20);
    let applied = store
        .apply_ingest(&vehicle.id, &[soc.clone(), range.clone()], None, 20)
        .await
        .expect("apply_ingest");
    assert_eq!(
        applied,
        IngestApplied {
            changes: vec![
                SignalChange {
                    code: SOC.to_string(),
                    previous: None,
                    current: soc.body.clone()
                },
                SignalChange {
                    code: RANGE.to_string(),
                    previous: None,
                    current: range.body.clone()
                },
            ],
            raised: vec![],
            resolved: vec![],
        },
        "first values are changes from nothing, in the order given"
    );
    let stored = store.signals(&vehicle.id).await.expect("signals");
    assert_eq!(stored.len(), 2);
    assert_eq!(stored[SOC], soc);
    assert_eq!(stored[RANGE], range);

    let soc_again = signal(SOC, soc.body.clone(), 30);
    let range_next = signal(RANGE, json!({"unit": "km", "value": 310}), 30);
    let applied = store
        .apply_ingest(
            &vehicle.id,
            &[soc_again.clone(), range_next.clone()],
            None,
            30,
        )
        .await
        .expect("apply_ingest");
    assert_eq!(
        applied.changes,
        vec![SignalChange {
            code: RANGE.to_string(),
            previous: Some(range.body.clone()),
            current: range_next.body.clone(),
        }],
        "only the signal whose value differs is a change"
    );
    let stored = store.signals(&vehicle.id).await.expect("signals");
    assert_eq!(
        stored[SOC], soc_again,
        "an unchanged value still records its new retrieval"
    );
    assert_eq!(stored[RANGE], range_next);

    let applied = store
        .apply_ingest(&vehicle.id, &[], None, 40)
        .await
        .expect("apply_ingest");
    assert_eq!(
        applied,
        IngestApplied::default(),
        "an empty ingest changes nothing"
    );
    assert!(store
        .vehicle_errors(&vehicle.id)
        .await
        .expect("errors")
        .is_empty());
}

/// Bodies compare as JSON values: key order and `78` versus `78.0` are not changes.
pub async fn ingest_compares_bodies_by_value_not_by_text(store: SharedStore) {
    let app = new_app(&store, "fleet").await;
    let vehicle = new_vehicle(&store, &app, "user", 1_000).await;
    let parse = |text: &str| serde_json::from_str::<Value>(text).expect("test JSON");
    let ingest = |body: Value| {
        let store = store.clone();
        let vehicle_id = vehicle.id.clone();
        async move {
            store
                .apply_ingest(&vehicle_id, &[signal(SOC, body, 1)], None, 1)
                .await
                .expect("apply_ingest")
        }
    };
    assert_eq!(
        ingest(parse(r#"{"unit":"percent","value":78}"#))
            .await
            .changes
            .len(),
        1
    );
    assert!(
        ingest(parse(r#"{"value":78,"unit":"percent"}"#))
            .await
            .changes
            .is_empty(),
        "reordered keys are the same value"
    );
    assert!(
        ingest(parse(r#"{"unit":"percent","value":78.0}"#))
            .await
            .changes
            .is_empty(),
        "78.0 is the same number as 78"
    );
    assert_eq!(
        ingest(parse(r#"{"unit":"percent","value":79}"#))
            .await
            .changes
            .len(),
        1
    );
    assert_eq!(
        ingest(parse(r#"{"values":["a","b"]}"#)).await.changes.len(),
        1
    );
    assert_eq!(
        ingest(parse(r#"{"values":["b","a"]}"#)).await.changes.len(),
        1,
        "array order is part of the value"
    );
}

/// A code given twice in one ingest counts once, with its last value.
pub async fn ingest_with_a_code_twice_reports_it_once(store: SharedStore) {
    let app = new_app(&store, "fleet").await;
    let vehicle = new_vehicle(&store, &app, "user", 1_000).await;
    store
        .apply_ingest(
            &vehicle.id,
            &[signal(SOC, json!({"value": 50}), 1)],
            None,
            1,
        )
        .await
        .expect("apply_ingest");
    let applied = store
        .apply_ingest(
            &vehicle.id,
            &[
                signal(SOC, json!({"value": 60}), 2),
                signal(SOC, json!({"value": 70}), 3),
            ],
            None,
            3,
        )
        .await
        .expect("apply_ingest");
    assert_eq!(
        applied.changes,
        vec![SignalChange {
            code: SOC.to_string(),
            previous: Some(json!({"value": 50})),
            current: json!({"value": 70}),
        }]
    );
    let applied = store
        .apply_ingest(
            &vehicle.id,
            &[
                signal(SOC, json!({"value": 80}), 4),
                signal(SOC, json!({"value": 70}), 5),
            ],
            None,
            5,
        )
        .await
        .expect("apply_ingest");
    assert!(
        applied.changes.is_empty(),
        "the last value is unchanged: {applied:?}"
    );
    let stored = store.signals(&vehicle.id).await.expect("signals");
    assert_eq!(stored[SOC], signal(SOC, json!({"value": 70}), 5));
}

/// `errors` is the full active set: new ones are raised, missing ones resolved with what was
/// stored, `[]` clears them all, and no `errors` leaves them alone.
pub async fn ingest_errors_raise_resolve_and_clear(store: SharedStore) {
    let app = new_app(&store, "fleet").await;
    let vehicle = new_vehicle(&store, &app, "user", 1_000).await;
    let auth = vehicle_error(
        "CONNECTED_SERVICES_ACCOUNT",
        "AUTHENTICATION_FAILED",
        "credentials expired",
        &[SOC, RANGE],
    );
    let capable = vehicle_error(
        "COMPATIBILITY",
        "VEHICLE_NOT_CAPABLE",
        "no plug sensor",
        &[PLUGGED],
    );
    let ingest = |errors: Option<Vec<VehicleErrorState>>| {
        let store = store.clone();
        let vehicle_id = vehicle.id.clone();
        async move {
            store
                .apply_ingest(&vehicle_id, &[], errors.as_deref(), 100)
                .await
                .expect("apply_ingest")
        }
    };
    let active = || {
        let store = store.clone();
        let vehicle_id = vehicle.id.clone();
        async move {
            store
                .vehicle_errors(&vehicle_id)
                .await
                .expect("vehicle_errors")
        }
    };

    let applied = ingest(Some(vec![auth.clone()])).await;
    assert_eq!(
        (applied.raised, applied.resolved),
        (vec![auth.clone()], vec![]),
        "first error raised"
    );
    assert_eq!(active().await, vec![auth.clone()]);

    let applied = store
        .apply_ingest(
            &vehicle.id,
            &[signal(SOC, json!({"value": 1}), 1)],
            None,
            101,
        )
        .await
        .expect("apply_ingest");
    assert!(
        applied.raised.is_empty() && applied.resolved.is_empty(),
        "no errors list: no change"
    );
    assert_eq!(
        active().await,
        vec![auth.clone()],
        "no errors list leaves errors alone"
    );

    let applied = ingest(Some(vec![auth.clone(), capable.clone()])).await;
    assert_eq!(
        (applied.raised, applied.resolved),
        (vec![capable.clone()], vec![]),
        "only the new error is raised"
    );
    assert_eq!(active().await, vec![auth.clone(), capable.clone()]);

    let capable_now = VehicleErrorState {
        description: Some("still no plug sensor".to_string()),
        ..capable.clone()
    };
    let applied = ingest(Some(vec![capable_now.clone()])).await;
    assert_eq!(
        (applied.raised, applied.resolved),
        (vec![], vec![auth.clone()]),
        "the missing error is resolved with its stored description and signals"
    );
    assert_eq!(
        active().await,
        vec![capable_now.clone()],
        "a continuing error takes the new details"
    );

    let applied = ingest(Some(vec![])).await;
    assert_eq!(
        (applied.raised, applied.resolved),
        (vec![], vec![capable_now]),
        "[] clears all"
    );
    assert!(active().await.is_empty());
    let applied = ingest(Some(vec![])).await;
    assert_eq!(
        applied,
        IngestApplied::default(),
        "clearing nothing reports nothing"
    );
}

/// Racing ingests on one vehicle are serialised: every value change is reported by exactly one
/// ingest, with the value it really replaced.
pub async fn concurrent_ingests_report_each_change_exactly_once(store: SharedStore) {
    const TASKS: i64 = 32;
    // Every ingest writes a distinct SEQUENCE value, so the `previous` it reports names the
    // ingest applied just before it: the chain recovers the serial order. TOGGLE takes few
    // values, so only some ingests change it; in that order we know which must report it.
    const SEQUENCE: &str = "odometer-traveleddistance";
    const TOGGLE: &str = PLUGGED;
    fn toggle(i: i64) -> Value {
        json!({"value": (i / 3) % 2 == 0})
    }

    let app = new_app(&store, "racing").await;
    let vehicle = new_vehicle(&store, &app, "user", 1_000).await;
    let barrier = Arc::new(tokio::sync::Barrier::new(TASKS as usize));
    let mut tasks = Vec::new();
    for i in 0..TASKS {
        let store = store.clone();
        let vehicle_id = vehicle.id.clone();
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let signals = [
                signal(SEQUENCE, json!({"value": i}), i),
                signal(TOGGLE, toggle(i), i),
            ];
            let applied = store
                .apply_ingest(&vehicle_id, &signals, None, i)
                .await
                .expect("concurrent apply_ingest");
            (i, applied)
        }));
    }
    let mut results: HashMap<i64, IngestApplied> = HashMap::new();
    for task in tasks {
        let (i, applied) = task.await.expect("ingest task");
        results.insert(i, applied);
    }

    let mut first = Vec::new();
    let mut successor: HashMap<i64, i64> = HashMap::new();
    for (i, applied) in &results {
        let sequence = change(applied, SEQUENCE).unwrap_or_else(|| {
            panic!("ingest {i} wrote a new value but reported no change: a change was lost")
        });
        assert_eq!(sequence.current, json!({"value": i}));
        match &sequence.previous {
            None => first.push(*i),
            Some(previous) => {
                let previous = previous["value"]
                    .as_i64()
                    .expect("sequence values are integers");
                if let Some(other) = successor.insert(previous, *i) {
                    panic!("ingests {other} and {i} both report replacing {previous}: a change was reported twice");
                }
            }
        }
    }
    assert_eq!(
        first.len(),
        1,
        "exactly one ingest may see no previous value, saw {first:?}"
    );
    let mut order = vec![first[0]];
    while let Some(next) = order.last().and_then(|last| successor.get(last)) {
        order.push(*next);
    }
    assert_eq!(
        order.len(),
        TASKS as usize,
        "the reported changes do not form one serial history"
    );

    let mut expected = 0;
    let mut reported = 0;
    for (position, i) in order.iter().enumerate() {
        let previous = position.checked_sub(1).map(|p| toggle(order[p]));
        let reported_change = change(&results[i], TOGGLE);
        if previous.as_ref() != Some(&toggle(*i)) {
            expected += 1;
            let reported_change = reported_change
                .unwrap_or_else(|| panic!("ingest {i} changed {TOGGLE} but did not report it"));
            assert_eq!(
                reported_change.previous, previous,
                "ingest {i} reported a wrong previous value"
            );
            assert_eq!(reported_change.current, toggle(*i));
        } else {
            assert!(
                reported_change.is_none(),
                "ingest {i} reported a change that did not happen"
            );
        }
        reported += usize::from(reported_change.is_some());
    }
    assert_eq!(
        reported, expected,
        "reported changes must equal the changes in serial order"
    );
    let last = *order.last().expect("non-empty order");
    let stored = store.signals(&vehicle.id).await.expect("signals");
    assert_eq!(
        stored[SEQUENCE].body,
        json!({"value": last}),
        "the last applied ingest's value stays"
    );
}

// --- webhooks and subscriptions -------------------------------------------------------------

/// Webhooks read back within their application, list oldest first, and update every mutable
/// field; another application can neither see nor update them.
pub async fn webhooks_round_trip_update_and_stay_in_their_app(store: SharedStore) {
    let app = new_app(&store, "hooks").await;
    let other = new_app(&store, "other hooks").await;
    let first = new_webhook(&store, &app).await;
    let second = Webhook {
        kind: WebhookKind::Scheduled,
        status: WebhookStatus::Unverified,
        config: json!({"schedule": {"frequency": "hourly", "interval": 1}, "endpoints": ["/battery"], "units": "metric"}),
        ..webhook_of(&app, WebhookStatus::Unverified)
    };
    store.create_webhook(&second).await.expect("create_webhook");

    assert_eq!(
        store.webhook(&app.id, &first.id).await.expect("webhook"),
        Some(first.clone())
    );
    assert_eq!(
        store.webhook(&other.id, &first.id).await.expect("webhook"),
        None,
        "another app's webhook"
    );
    assert_eq!(
        store.list_webhooks(&app.id).await.expect("list_webhooks"),
        vec![first.clone(), second.clone()],
        "oldest first, ties in creation order"
    );
    assert!(store
        .list_webhooks(&other.id)
        .await
        .expect("list_webhooks")
        .is_empty());
    assert_conflict(
        store
            .create_webhook(&Webhook {
                id: first.id.clone(),
                ..webhook_of(&app, WebhookStatus::Enabled)
            })
            .await,
        "a webhook with a taken id",
    );

    let updated = Webhook {
        name: "renamed".to_string(),
        callback_uri: "https://receiver.example/v2".to_string(),
        error_callback_uri: Some("https://receiver.example/errors".to_string()),
        config: json!({"triggers": [RANGE], "data": [SOC, PLUGGED]}),
        status: WebhookStatus::Disabled,
        disabled_reason: Some("by hand".to_string()),
        signing_secret: fresh_id("whsec"),
        previous_secret: Some(first.signing_secret.clone()),
        previous_secret_expires_at: Some(90_000),
        max_payload_bytes: 10_000,
        updated_at: 5_000,
        ..first.clone()
    };
    store
        .update_webhook(&updated)
        .await
        .expect("update_webhook");
    assert_eq!(
        store.webhook(&app.id, &first.id).await.expect("webhook"),
        Some(updated.clone())
    );

    let hijack = Webhook {
        app_id: other.id.clone(),
        name: "hijacked".to_string(),
        ..updated.clone()
    };
    store.update_webhook(&hijack).await.expect("update_webhook");
    assert_eq!(
        store.webhook(&app.id, &first.id).await.expect("webhook"),
        Some(updated),
        "an update naming another application must not touch the webhook"
    );
}

/// Deleting a webhook drops its subscriptions and fails its pending deliveries, which stay in
/// the log; other webhooks are untouched.
pub async fn delete_webhook_fails_its_pending_deliveries_and_drops_subscriptions(
    store: SharedStore,
) {
    let app = new_app(&store, "hooks").await;
    let other = new_app(&store, "other hooks").await;
    let doomed = new_webhook(&store, &app).await;
    let kept = new_webhook(&store, &app).await;
    let vehicle = new_vehicle(&store, &app, "user", 1_000).await;
    for webhook in [&doomed, &kept] {
        assert!(store
            .subscribe(&webhook.id, &vehicle.id, 10)
            .await
            .expect("subscribe"));
    }
    let done = delivery_for(&doomed, Some(5_000), 1_000, &[&vehicle.id]);
    let due = delivery_for(&doomed, Some(5_000), 1_001, &[&vehicle.id]);
    let verify = delivery_for(&doomed, None, 1_002, &[]);
    let elsewhere = delivery_for(&kept, Some(5_000), 1_003, &[&vehicle.id]);
    enqueue(
        &store,
        &[done.clone(), due.clone(), verify.clone(), elsewhere.clone()],
    )
    .await;
    complete(&store, &[completion(&done.id, Outcome::Succeeded, 2_000)]).await;

    assert!(
        !store
            .delete_webhook(&other.id, &doomed.id)
            .await
            .expect("delete_webhook"),
        "another application must not delete the webhook"
    );
    assert!(store
        .delete_webhook(&app.id, &doomed.id)
        .await
        .expect("delete_webhook"));
    assert_eq!(
        store.webhook(&app.id, &doomed.id).await.expect("webhook"),
        None
    );
    assert_eq!(
        store.list_webhooks(&app.id).await.expect("list_webhooks"),
        vec![kept.clone()]
    );
    assert_eq!(
        store
            .subscriptions(&doomed.id, Page::default())
            .await
            .expect("subscriptions")
            .1,
        0
    );
    assert_eq!(
        store
            .subscriptions(&kept.id, Page::default())
            .await
            .expect("subscriptions")
            .1,
        1
    );

    for pending in [&due, &verify] {
        let failed = delivery(&store, &app, &pending.id).await;
        assert_eq!(
            failed.status,
            DeliveryStatus::Failed,
            "a pending delivery of a deleted webhook fails"
        );
        assert_eq!(failed.last_error.as_deref(), Some("webhook deleted"));
        assert_eq!(failed.next_attempt_at, None);
    }
    assert_eq!(
        delivery(&store, &app, &done.id).await.status,
        DeliveryStatus::Succeeded
    );
    assert_eq!(
        delivery(&store, &app, &elsewhere.id).await.status,
        DeliveryStatus::Pending
    );
    let (log, total) = store
        .list_deliveries(
            &app.id,
            &doomed.id,
            &DeliveryFilter::default(),
            Page::default(),
        )
        .await
        .expect("list_deliveries");
    assert_eq!((log.len(), total), (3, 3), "the log outlives the webhook");
    assert!(
        store
            .claim_one(&app.id, &due.id, 10_000)
            .await
            .expect("claim_one")
            .is_none(),
        "a delivery whose webhook is gone cannot be claimed"
    );
    assert!(!store
        .delete_webhook(&app.id, &doomed.id)
        .await
        .expect("delete_webhook"));
}

/// A fleet import: `create_vehicles` creates every vehicle or, on a conflict, none;
/// `subscribe_many` subscribes each vehicle once and counts only the new subscriptions.
pub async fn bulk_create_and_subscribe_are_all_or_nothing_and_counted(store: SharedStore) {
    let app = new_app(&store, "import").await;
    let webhook = new_webhook(&store, &app).await;
    let fleet: Vec<Vehicle> = (0..1_200)
        .map(|i| vehicle_of(&app, &format!("user-{}", i % 7), 10 + i))
        .collect();
    store
        .create_vehicles(&fleet)
        .await
        .expect("create_vehicles of fresh vehicles");
    let (listed, total) = store
        .list_vehicles(
            &app.id,
            None,
            Page {
                limit: 2,
                offset: 0,
            },
        )
        .await
        .expect("list_vehicles");
    assert_eq!(total, 1_200, "every imported vehicle is there");
    assert_eq!(
        listed,
        fleet[..2].to_vec(),
        "imported vehicles read back whole"
    );

    let clash = vec![
        vehicle_of(&app, "user-x", 5_000),
        Vehicle {
            vin: fleet[0].vin.clone(),
            ..vehicle_of(&app, "user-y", 5_001)
        },
    ];
    assert_conflict(
        store.create_vehicles(&clash).await,
        "an import with a VIN already in the app",
    );
    assert_eq!(
        store.vehicle(&app.id, &clash[0].id).await.expect("vehicle"),
        None,
        "a failed import creates none of its vehicles"
    );

    let ids: Vec<String> = fleet.iter().map(|v| v.id.clone()).collect();
    assert!(store
        .subscribe(&webhook.id, &ids[0], 50)
        .await
        .expect("subscribe"));
    assert_eq!(
        store
            .subscribe_many(&webhook.id, &ids, 100)
            .await
            .expect("subscribe_many"),
        1_199,
        "only the vehicles not yet subscribed count"
    );
    let (first, total) = store
        .subscriptions(
            &webhook.id,
            Page {
                limit: 1,
                offset: 0,
            },
        )
        .await
        .expect("subscriptions");
    assert_eq!(total, 1_200);
    assert_eq!(
        first[0].created_at, 50,
        "an existing subscription keeps its time"
    );
    assert_eq!(
        store
            .subscribe_many(&webhook.id, &ids[..10], 200)
            .await
            .expect("subscribe_many"),
        0
    );
}

/// A schedule page: the webhook's vehicles subscribed before the boundary, by id after the
/// cursor, each with every signal exactly as `signals` reads it back (bodies of any shape,
/// with or without an OEM time); a vehicle without signals has none.
pub async fn schedule_page_reads_subscribers_by_id_with_their_signals(store: SharedStore) {
    let app = new_app(&store, "scheduled").await;
    let webhook = new_webhook(&store, &app).await;
    let other = new_webhook(&store, &app).await;
    let mut early: Vec<Vehicle> = Vec::new();
    for i in 0..3 {
        early.push(new_vehicle(&store, &app, "user", i).await);
    }
    let late = new_vehicle(&store, &app, "user", 9).await;
    let range = json!({"unit": "kilometers", "value": 53.1,
                       "additionalValues": [{"type": "ESTIMATED", "value": 49.8}]});
    let name = json!({"value": "Çà \"va\" \u{1F697}", "n": 12345678901234_i64, "x": null});
    store
        .apply_ingest(
            &early[0].id,
            &[
                SignalValue {
                    oem_updated_at: Some(1_500),
                    ..signal(SOC, json!({"unit": "percent", "value": 78}), 2_000)
                },
                signal(RANGE, range, 2_000),
                signal("vehicleidentification-nickname", name, 2_001),
            ],
            None,
            2_000,
        )
        .await
        .expect("ingest");
    store
        .apply_ingest(
            &early[2].id,
            &[signal(PLUGGED, json!({"value": true}), 3_000)],
            None,
            3_000,
        )
        .await
        .expect("ingest");
    for v in &early {
        store
            .subscribe(&webhook.id, &v.id, 100)
            .await
            .expect("subscribe");
        store
            .subscribe(&other.id, &v.id, 100)
            .await
            .expect("subscribe");
    }
    store
        .subscribe(&webhook.id, &late.id, 500)
        .await
        .expect("subscribe");

    early.sort_by(|a, b| a.id.cmp(&b.id));
    let page = store
        .schedule_page(&webhook.id, 300, None, 10)
        .await
        .expect("schedule_page");
    assert_eq!(
        page.iter().map(|v| v.vehicle.clone()).collect::<Vec<_>>(),
        early,
        "subscribed before the boundary, by id; the later subscriber waits"
    );
    for v in &page {
        assert_eq!(
            v.signals,
            store.signals(&v.vehicle.id).await.expect("signals"),
            "a page's signals are the vehicle's signals"
        );
    }
    assert_eq!(page.iter().map(|v| v.signals.len()).sum::<usize>(), 4);

    let first = store
        .schedule_page(&webhook.id, 300, None, 2)
        .await
        .expect("schedule_page");
    let rest = store
        .schedule_page(&webhook.id, 300, Some(&first[1].vehicle.id), 2)
        .await
        .expect("schedule_page");
    assert_eq!(
        first
            .iter()
            .chain(&rest)
            .map(|v| v.vehicle.id.clone())
            .collect::<Vec<_>>(),
        early.iter().map(|v| v.id.clone()).collect::<Vec<_>>(),
        "pages continue after the cursor"
    );
    assert_eq!(
        store
            .schedule_page(&webhook.id, 1_000, None, 10)
            .await
            .expect("schedule_page")
            .len(),
        4
    );
}

/// Subscribing twice is one subscription; unsubscribing twice finds nothing the second time;
/// the list is paged, oldest first, with the total.
pub async fn subscribed_webhooks_many_matches_one_vehicle_at_a_time(store: SharedStore) {
    let app = new_app(&store, "many").await;
    // Oldest first, whatever the ids: the older webhook gets the larger id, so an order by id
    // (the subscriptions' own) would put them the other way round.
    let (mut first, mut second) = (
        webhook_of(&app, WebhookStatus::Enabled),
        webhook_of(&app, WebhookStatus::Enabled),
    );
    if first.id < second.id {
        std::mem::swap(&mut first.id, &mut second.id);
    }
    second.created_at = first.created_at + 1;
    for webhook in [&first, &second] {
        store.create_webhook(webhook).await.expect("create_webhook");
    }
    let both = new_vehicle(&store, &app, "user", 1).await;
    let one = new_vehicle(&store, &app, "user", 2).await;
    let none = new_vehicle(&store, &app, "user", 3).await;
    for (webhook, vehicle) in [(&first, &both), (&second, &both), (&second, &one)] {
        store
            .subscribe(&webhook.id, &vehicle.id, 100)
            .await
            .expect("subscribe");
    }
    let ids = [
        both.id.as_str(),
        one.id.as_str(),
        none.id.as_str(),
        "no-such-vehicle",
    ];
    let many = store
        .subscribed_webhooks_many(&ids)
        .await
        .expect("subscribed_webhooks_many");
    for id in ids {
        let single = store
            .subscribed_webhooks(id)
            .await
            .expect("subscribed_webhooks");
        let many: Vec<Webhook> = many
            .get(id)
            .into_iter()
            .flatten()
            .map(|webhook| Webhook::clone(webhook))
            .collect();
        assert_eq!(
            many, single,
            "vehicle {id}: the same webhooks in the same order"
        );
    }
    assert_eq!(many.len(), 2, "vehicles without subscriptions are absent");
    assert!(store
        .subscribed_webhooks_many(&[])
        .await
        .expect("an empty list")
        .is_empty());
}

pub async fn subscriptions_subscribe_once_unsubscribe_once_and_page(store: SharedStore) {
    let app = new_app(&store, "hooks").await;
    let webhook = new_webhook(&store, &app).await;
    let v1 = new_vehicle(&store, &app, "user", 1).await;
    let v2 = new_vehicle(&store, &app, "user", 2).await;
    let v3 = new_vehicle(&store, &app, "user", 3).await;
    assert!(
        store
            .subscribe(&webhook.id, &v1.id, 100)
            .await
            .expect("subscribe"),
        "first subscribe"
    );
    assert!(
        !store
            .subscribe(&webhook.id, &v1.id, 150)
            .await
            .expect("subscribe"),
        "second subscribe"
    );
    assert!(store
        .subscribe(&webhook.id, &v2.id, 200)
        .await
        .expect("subscribe"));
    assert!(store
        .subscribe(&webhook.id, &v3.id, 300)
        .await
        .expect("subscribe"));

    let sub = |vehicle: &Vehicle, created_at| Subscription {
        webhook_id: webhook.id.clone(),
        vehicle_id: vehicle.id.clone(),
        created_at,
    };
    let page = |limit, offset| Page { limit, offset };
    assert_eq!(
        store
            .subscriptions(&webhook.id, page(2, 0))
            .await
            .expect("subscriptions"),
        (vec![sub(&v1, 100), sub(&v2, 200)], 3),
        "first page; a repeated subscribe keeps the original time"
    );
    assert_eq!(
        store
            .subscriptions(&webhook.id, page(2, 2))
            .await
            .expect("subscriptions"),
        (vec![sub(&v3, 300)], 3)
    );
    assert!(
        store
            .unsubscribe(&webhook.id, &v2.id)
            .await
            .expect("unsubscribe"),
        "first unsubscribe"
    );
    assert!(
        !store
            .unsubscribe(&webhook.id, &v2.id)
            .await
            .expect("unsubscribe"),
        "second unsubscribe"
    );
    assert_eq!(
        store
            .subscriptions(&webhook.id, page(50, 0))
            .await
            .expect("subscriptions"),
        (vec![sub(&v1, 100), sub(&v3, 300)], 2)
    );
}

// --- outbox ---------------------------------------------------------------------------------

/// Enqueued deliveries read back pending, never attempted, within their application.
pub async fn enqueue_many_stores_pending_deliveries(store: SharedStore) {
    let app = new_app(&store, "outbox").await;
    let other = new_app(&store, "other outbox").await;
    let webhook = new_webhook(&store, &app).await;
    let event = delivery_for(&webhook, Some(5_000), 1_000, &["veh-a", "veh-b"]);
    let verify = delivery_for(&webhook, None, 1_001, &[]);
    store
        .enqueue_many(&[])
        .await
        .expect("enqueue_many of nothing");
    enqueue(&store, &[event.clone(), verify.clone()]).await;
    assert_eq!(delivery(&store, &app, &event.id).await, as_enqueued(&event));
    assert_eq!(
        delivery(&store, &app, &verify.id).await,
        as_enqueued(&verify)
    );
    assert_eq!(
        store
            .delivery(&other.id, &event.id)
            .await
            .expect("delivery"),
        None,
        "another app's delivery"
    );
    assert!(store
        .attempts(&event.id)
        .await
        .expect("attempts")
        .is_empty());
}

/// One enqueue is one transaction: a batch with a taken id inserts nothing.
pub async fn enqueue_many_is_all_or_nothing(store: SharedStore) {
    let app = new_app(&store, "outbox").await;
    let webhook = new_webhook(&store, &app).await;
    let first = delivery_for(&webhook, Some(5_000), 1_000, &[]);
    enqueue(&store, std::slice::from_ref(&first)).await;
    let fresh = delivery_for(&webhook, Some(5_000), 1_001, &[]);
    let result = store.enqueue_many(&[fresh.clone(), first.clone()]).await;
    assert!(
        result.is_err(),
        "a batch with a taken delivery id must fail"
    );
    assert_eq!(
        store.delivery(&app.id, &fresh.id).await.expect("delivery"),
        None,
        "nothing of a failed batch may be stored"
    );
}

/// *Exclusive outbox.* Claims take pending, due, unleased deliveries, earliest due first and
/// then in creation order, with their webhook and the application's token.
pub async fn claim_due_takes_due_unleased_deliveries_in_order(store: SharedStore) {
    drain_outbox(&store).await;
    let app = new_app(&store, "claims").await;
    let webhook = new_webhook(&store, &app).await;
    let later = delivery_for(&webhook, Some(2_000), 1, &[]);
    let early = delivery_for(&webhook, Some(1_000), 2, &[]);
    let early_too = delivery_for(&webhook, Some(1_000), 3, &[]);
    let not_due = delivery_for(&webhook, Some(9_000), 4, &[]);
    let never_due = delivery_for(&webhook, None, 5, &[]);
    let finished = delivery_for(&webhook, Some(500), 6, &[]);
    enqueue(
        &store,
        &[
            later.clone(),
            early.clone(),
            early_too.clone(),
            not_due.clone(),
            never_due.clone(),
            finished.clone(),
        ],
    )
    .await;
    complete(&store, &[completion(&finished.id, Outcome::Failed, 600)]).await;
    // A payload rendered for a webhook that is gone by the time it is enqueued.
    let gone = new_webhook(&store, &app).await;
    assert!(store
        .delete_webhook(&app.id, &gone.id)
        .await
        .expect("delete_webhook"));
    let orphan = delivery_for(&gone, Some(1_000), 7, &[]);
    enqueue(&store, std::slice::from_ref(&orphan)).await;

    let claimed = store
        .claim_due(5_000, 100, 200, 2, i64::MAX, &[])
        .await
        .expect("claim_due");
    let ids: Vec<&str> = claimed.iter().map(|c| c.delivery.id.as_str()).collect();
    assert_eq!(
        ids,
        vec![early.id.as_str(), early_too.id.as_str()],
        "earliest due first, then creation order"
    );
    for c in &claimed {
        assert_eq!(*c.webhook, webhook, "a claim carries its webhook");
        assert_eq!(
            c.management_token, app.management_token,
            "a claim carries the app's token"
        );
        assert_eq!(c.delivery.status, DeliveryStatus::Pending);
    }
    assert_eq!(claimed[0].delivery, as_enqueued(&early));
    assert_eq!(
        claim(&store, 5_000, 100, 200, 10).await,
        vec![later.id.clone()],
        "leased deliveries are not claimed again; not-due, never-due, finished and orphaned ones never"
    );
    assert!(claim(&store, 5_000, 100, 200, 10).await.is_empty());
    assert!(
        store
            .claim_due(5_000, 100, 200, 0, i64::MAX, &[])
            .await
            .expect("claim_due")
            .is_empty(),
        "limit 0"
    );
}

/// *Exclusive outbox.* A lease holds until it expires in lease time (not platform time), and a
/// completion releases it at once.
pub async fn claim_due_leases_until_expiry_and_completion_releases(store: SharedStore) {
    drain_outbox(&store).await;
    let app = new_app(&store, "leases").await;
    let webhook = new_webhook(&store, &app).await;
    let d = delivery_for(&webhook, Some(1_000), 1, &[]);
    enqueue(&store, std::slice::from_ref(&d)).await;

    assert_eq!(claim(&store, 5_000, 100, 200, 10).await, vec![d.id.clone()]);
    assert!(
        claim(&store, 5_000, 199, 300, 10).await.is_empty(),
        "leased until 200"
    );
    assert!(
        claim(&store, 500, 200, 300, 10).await.is_empty(),
        "an expired lease does not make it due"
    );
    assert_eq!(
        claim(&store, 5_000, 200, 300, 10).await,
        vec![d.id.clone()],
        "claimable again once the lease has expired"
    );
    complete(&store, &[completion(&d.id, Outcome::RetryAt(6_000), 5_000)]).await;
    assert_eq!(
        claim(&store, 6_000, 0, 400, 10).await,
        vec![d.id.clone()],
        "a completion releases the lease"
    );
}

/// The dispatcher's round: completions are recorded as `complete_many` records them and the
/// claim takes what `claim_due` would. Completions that cannot be written (here an attempt of
/// a delivery that does not exist) are written not at all, and the claim is made anyway.
pub async fn complete_and_claim_records_then_claims_and_a_failed_write_spares_the_claim(
    store: SharedStore,
) {
    drain_outbox(&store).await;
    let app = new_app(&store, "rounds").await;
    let webhook = new_webhook(&store, &app).await;
    let sent = delivery_for(&webhook, Some(1_000), 1, &[]);
    let waiting = delivery_for(&webhook, Some(1_000), 2, &[]);
    enqueue(&store, &[sent.clone(), waiting.clone()]).await;
    assert_eq!(claim(&store, 5_000, 0, 100, 1).await, vec![sent.id.clone()]);

    let round = |limit| ClaimRequest {
        now: 5_000,
        lease_now: 0,
        lease_until: 100,
        limit,
        per_webhook: i64::MAX,
        skip_webhooks: &[],
    };
    let success = attempt(&sent.id, 1, Some(200), None);
    let (written, claimed) = store
        .complete_and_claim(
            &[Completion {
                attempt: Some(success.clone()),
                ..completion(&sent.id, Outcome::Succeeded, 5_000)
            }],
            &round(10),
        )
        .await;
    written.expect("the completion is written");
    let claimed: Vec<String> = claimed
        .expect("the claim is made")
        .into_iter()
        .map(|c| c.delivery.id)
        .collect();
    assert_eq!(claimed, vec![waiting.id.clone()], "the other due delivery");
    assert_eq!(
        delivery(&store, &app, &sent.id).await.status,
        DeliveryStatus::Succeeded
    );
    assert_eq!(
        store.attempts(&sent.id).await.expect("attempts"),
        vec![success]
    );
    assert!(
        claim(&store, 5_000, 99, 200, 10).await.is_empty(),
        "the claimed one is leased"
    );

    let next = delivery_for(&webhook, Some(1_000), 3, &[]);
    enqueue(&store, std::slice::from_ref(&next)).await;
    let orphan = attempt("dlv_missing", 1, Some(200), None);
    let (written, claimed) = store
        .complete_and_claim(
            &[
                Completion {
                    attempt: Some(attempt(&waiting.id, 1, Some(200), None)),
                    ..completion(&waiting.id, Outcome::Succeeded, 5_000)
                },
                Completion {
                    attempt: Some(orphan),
                    ..completion("dlv_missing", Outcome::Succeeded, 5_000)
                },
            ],
            &round(10),
        )
        .await;
    assert!(
        written.is_err(),
        "an attempt of a missing delivery fails the write"
    );
    let claimed: Vec<String> = claimed
        .expect("the claim is made although the write failed")
        .into_iter()
        .map(|c| c.delivery.id)
        .collect();
    assert_eq!(claimed, vec![next.id.clone()]);
    let waiting_now = delivery(&store, &app, &waiting.id).await;
    assert_eq!(
        (waiting_now.status, waiting_now.attempt_count),
        (DeliveryStatus::Pending, 0),
        "nothing of a failed write stays"
    );
    assert!(store
        .attempts(&waiting.id)
        .await
        .expect("attempts")
        .is_empty());

    let (written, claimed) = store.complete_and_claim(&[], &round(0)).await;
    written.expect("nothing to write");
    assert!(claimed.expect("no room, no claim").is_empty());
}

/// *Exclusive outbox.* Deliveries of webhooks at their in-flight cap are left for later.
pub async fn claim_due_skips_webhooks_at_their_cap(store: SharedStore) {
    drain_outbox(&store).await;
    let app = new_app(&store, "caps").await;
    let busy = new_webhook(&store, &app).await;
    let idle = new_webhook(&store, &app).await;
    let for_busy = delivery_for(&busy, Some(1_000), 1, &[]);
    let for_idle = delivery_for(&idle, Some(1_000), 2, &[]);
    enqueue(&store, &[for_busy.clone(), for_idle.clone()]).await;
    let claimed: Vec<String> = store
        .claim_due(
            5_000,
            100,
            200,
            10,
            i64::MAX,
            std::slice::from_ref(&busy.id),
        )
        .await
        .expect("claim_due")
        .into_iter()
        .map(|c| c.delivery.id)
        .collect();
    assert_eq!(
        claimed,
        vec![for_idle.id.clone()],
        "the busy webhook's delivery is skipped"
    );
    assert_eq!(
        claim(&store, 5_000, 100, 200, 10).await,
        vec![for_busy.id.clone()],
        "and taken later"
    );
}

/// *Exclusive outbox.* One claim gives each webhook at most `per_webhook` of the first `limit`
/// due deliveries, in due order; the rest stay unleased for the next claim.
pub async fn claim_due_takes_at_most_per_webhook_of_one_webhook(store: SharedStore) {
    drain_outbox(&store).await;
    let app = new_app(&store, "per webhook").await;
    let crowded = new_webhook(&store, &app).await;
    let quiet = new_webhook(&store, &app).await;
    // Due order: four of `crowded`, then one of `quiet`, then one more of `crowded`.
    let mut due: Vec<NewDelivery> = (0..4)
        .map(|i| delivery_for(&crowded, Some(1_000 + i), 1, &[]))
        .collect();
    due.push(delivery_for(&quiet, Some(1_100), 1, &[]));
    due.push(delivery_for(&crowded, Some(1_200), 1, &[]));
    enqueue(&store, &due).await;
    let claimed: Vec<String> = store
        .claim_due(5_000, 100, 200, 10, 2, &[])
        .await
        .expect("claim_due")
        .into_iter()
        .map(|c| c.delivery.id)
        .collect();
    assert_eq!(
        claimed,
        vec![due[0].id.clone(), due[1].id.clone(), due[4].id.clone()],
        "two of the crowded webhook, then the quiet one"
    );
    assert_eq!(
        claim(&store, 5_000, 100, 200, 10).await,
        vec![due[2].id.clone(), due[3].id.clone(), due[5].id.clone()],
        "the crowded webhook's others were left unleased"
    );
    assert!(
        store
            .claim_due(5_000, 100, 200, 10, 0, &[])
            .await
            .expect("claim_due")
            .is_empty(),
        "no room per webhook claims nothing"
    );
}

/// *Exclusive outbox.* `claim_one` claims a delivery of its application whatever its due time
/// or status, and leases it; a delivery under a live lease (real time) is busy: `None`.
pub async fn claim_one_claims_any_delivery_of_its_app(store: SharedStore) {
    drain_outbox(&store).await;
    let app = new_app(&store, "manual").await;
    let other = new_app(&store, "other manual").await;
    let webhook = new_webhook(&store, &app).await;
    let verify = delivery_for(&webhook, None, 1, &[]);
    let due = delivery_for(&webhook, Some(1_000), 2, &[]);
    enqueue(&store, &[verify.clone(), due.clone()]).await;

    assert!(
        store
            .claim_one(&other.id, &verify.id, 500)
            .await
            .expect("claim_one")
            .is_none(),
        "another app"
    );
    assert!(store
        .claim_one(&app.id, &fresh_id("dlv"), 500)
        .await
        .expect("claim_one")
        .is_none());
    let claimed = store
        .claim_one(&app.id, &verify.id, 500)
        .await
        .expect("claim_one")
        .expect("a never-due delivery can be claimed by id");
    assert_eq!(
        claimed,
        ClaimedDelivery {
            delivery: as_enqueued(&verify),
            webhook: Arc::new(webhook.clone()),
            management_token: app.management_token.clone(),
        }
    );
    complete(&store, &[completion(&verify.id, Outcome::Succeeded, 2_000)]).await;
    let again = store
        .claim_one(&app.id, &verify.id, 500)
        .await
        .expect("claim_one")
        .expect("a finished delivery can be claimed by id (manual retry)");
    assert_eq!(again.delivery.status, DeliveryStatus::Succeeded);

    assert!(store
        .claim_one(&app.id, &due.id, 500)
        .await
        .expect("claim_one")
        .is_some());
    assert!(
        !claim(&store, 5_000, 400, 600, 10).await.contains(&due.id),
        "claim_one leases the delivery"
    );
    assert!(
        claim(&store, 5_000, 500, 600, 10).await.contains(&due.id),
        "until the lease expires"
    );

    // Leased in real time by a dispatcher sending it right now.
    let live_lease = crate::clock::real_now_ms() + 600_000;
    let busy = delivery_for(&webhook, Some(1_000), 3, &[]);
    enqueue(&store, std::slice::from_ref(&busy)).await;
    let claimed = store
        .claim_due(
            5_000,
            crate::clock::real_now_ms(),
            live_lease,
            10,
            i64::MAX,
            &[],
        )
        .await
        .expect("claim_due");
    assert!(claimed.iter().any(|c| c.delivery.id == busy.id));
    assert!(
        store
            .claim_one(&app.id, &busy.id, live_lease)
            .await
            .expect("claim_one")
            .is_none(),
        "a delivery under a live lease is busy"
    );
    complete(
        &store,
        &[completion(&busy.id, Outcome::RetryAt(9_000), 5_000)],
    )
    .await;
    assert!(
        store
            .claim_one(&app.id, &busy.id, live_lease)
            .await
            .expect("claim_one")
            .is_some(),
        "a completion frees it for claim_one"
    );
}

/// Enqueues one due delivery to `webhook`, claims it alone and settles it; returns the claim.
async fn claim_alone(
    store: &SharedStore,
    webhook: &Webhook,
    outcome: Completion,
) -> ClaimedDelivery {
    let d = delivery_for(webhook, Some(1_000), 1, &[]);
    enqueue(store, std::slice::from_ref(&d)).await;
    let mut claimed = store
        .claim_due(5_000, 0, 100, 10, i64::MAX, &[])
        .await
        .expect("claim_due");
    assert_eq!(claimed.len(), 1, "only the one just enqueued is due");
    let claimed = claimed.remove(0);
    assert_eq!(claimed.delivery.id, d.id);
    complete(
        store,
        &[Completion {
            delivery_id: d.id.clone(),
            ..outcome
        }],
    )
    .await;
    claimed
}

/// Gives `webhook` a new callback and secret through the store; returns it as changed.
async fn change_webhook(store: &SharedStore, webhook: &Webhook) -> Webhook {
    let changed = Webhook {
        callback_uri: "https://receiver.example/changed".to_string(),
        signing_secret: fresh_id("whsec"),
        updated_at: 2_000,
        ..webhook.clone()
    };
    store
        .update_webhook(&changed)
        .await
        .expect("update_webhook");
    changed
}

/// A claim carries its webhook and its application's token as they are when it is made:
/// after the webhook is changed, disabled by a completion or deleted, or its application's
/// token replaced, the next claim carries the change (the SQLite store keeps the webhooks of
/// recent claims, and must forget them).
pub async fn a_claim_carries_its_webhook_and_token_as_they_now_are(store: SharedStore) {
    drain_outbox(&store).await;
    let app = new_app(&store, "current webhook").await;
    let webhook = new_webhook(&store, &app).await;
    let succeeded = completion("", Outcome::Succeeded, 2_000);

    let first = claim_alone(&store, &webhook, succeeded.clone()).await;
    assert_eq!(*first.webhook, webhook);
    assert_eq!(first.management_token, app.management_token);

    let changed = change_webhook(&store, &webhook).await;
    let second = claim_alone(&store, &changed, succeeded.clone()).await;
    assert_eq!(*second.webhook, changed, "the webhook as changed");

    let token = fresh_id("amt");
    store
        .set_app_token(&app.id, &token)
        .await
        .expect("set_app_token");
    let disabling = Completion {
        disable_webhook: Some((webhook.id.clone(), "410 Gone".to_string())),
        ..completion("", Outcome::Failed, 3_000)
    };
    let third = claim_alone(&store, &changed, disabling).await;
    assert_eq!(third.management_token, token, "the application's new token");

    let fourth = claim_alone(&store, &changed, succeeded.clone()).await;
    assert_eq!(
        fourth.webhook.status,
        WebhookStatus::Disabled,
        "disabled by the last completion"
    );
    assert_eq!(fourth.webhook.disabled_reason.as_deref(), Some("410 Gone"));

    let orphan = delivery_for(&changed, Some(1_000), 1, &[]);
    enqueue(&store, std::slice::from_ref(&orphan)).await;
    assert!(store
        .delete_webhook(&app.id, &webhook.id)
        .await
        .expect("delete_webhook"));
    assert!(
        claim(&store, 5_000, 0, 100, 10).await.is_empty(),
        "a deleted webhook's deliveries are not claimed"
    );
}

/// The webhooks of an ingest group are its vehicles' webhooks as they are when it is read:
/// after a webhook is changed, disabled by a completion, unsubscribed or deleted, the next read
/// shows it (the SQLite store serves them from the webhooks of recent claims and groups, and
/// must forget them).
pub async fn subscribed_webhooks_many_sees_webhooks_as_they_now_are(store: SharedStore) {
    drain_outbox(&store).await;
    let app = new_app(&store, "current subscriptions").await;
    let webhook = new_webhook(&store, &app).await;
    let other = new_webhook(&store, &app).await;
    let vehicle = new_vehicle(&store, &app, "user", 1).await;
    for id in [&webhook.id, &other.id] {
        store
            .subscribe(id, &vehicle.id, 100)
            .await
            .expect("subscribe");
    }
    let read = || async {
        let mut many = store
            .subscribed_webhooks_many(&[vehicle.id.as_str()])
            .await
            .expect("subscribed_webhooks_many");
        many.remove(&vehicle.id)
            .unwrap_or_default()
            .iter()
            .map(|webhook| Webhook::clone(webhook))
            .collect::<Vec<_>>()
    };
    // Oldest first; created at the same time, by id.
    let in_order = |mut both: [Webhook; 2]| {
        both.sort_by(|a, b| a.id.cmp(&b.id));
        both
    };
    assert_eq!(read().await, in_order([webhook.clone(), other.clone()]));

    let changed = change_webhook(&store, &webhook).await;
    assert_eq!(
        read().await,
        in_order([changed.clone(), other.clone()]),
        "as changed"
    );

    let disabling = Completion {
        disable_webhook: Some((webhook.id.clone(), "410 Gone".to_string())),
        ..completion("", Outcome::Failed, 3_000)
    };
    claim_alone(&store, &changed, disabling).await;
    let after = read().await;
    let disabled = after
        .iter()
        .find(|w| w.id == webhook.id)
        .expect("still subscribed");
    assert_eq!(disabled.status, WebhookStatus::Disabled, "disabled");
    assert_eq!(disabled.disabled_reason.as_deref(), Some("410 Gone"));

    assert!(store
        .unsubscribe(&other.id, &vehicle.id)
        .await
        .expect("unsubscribe"));
    assert_eq!(
        read().await,
        [after
            .into_iter()
            .find(|w| w.id == webhook.id)
            .expect("kept")],
        "unsubscribed"
    );
    assert!(store
        .delete_webhook(&app.id, &webhook.id)
        .await
        .expect("delete_webhook"));
    assert!(read().await.is_empty(), "deleted");
}

/// A delivery changed by hand before any claim took it (a manual attempt, or one that found
/// nothing to send) is claimed as it now is, not as it was enqueued: the SQLite store keeps
/// fresh payloads in memory until their first claim, and must not serve a stale one.
pub async fn a_claim_after_a_manual_attempt_sees_what_it_changed(store: SharedStore) {
    drain_outbox(&store).await;
    let app = new_app(&store, "changed by hand").await;
    let webhook = new_webhook(&store, &app).await;
    let untouched = delivery_for(&webhook, Some(1_000), 1, &[]);
    let skipped = delivery_for(&webhook, Some(1_000), 2, &[]);
    let attempted = delivery_for(&webhook, Some(1_000), 3, &[]);
    enqueue(
        &store,
        &[untouched.clone(), skipped.clone(), attempted.clone()],
    )
    .await;

    // No attempt made (the attempt count stays 0), but its due time and error move on.
    store
        .claim_one(&app.id, &skipped.id, 0)
        .await
        .expect("claim_one")
        .expect("the delivery exists");
    let mut no_attempt = completion(&skipped.id, Outcome::RetryAt(1_500), 1_200);
    no_attempt.last_error = Some("nothing sent".into());
    store
        .claim_one(&app.id, &attempted.id, 0)
        .await
        .expect("claim_one")
        .expect("the delivery exists");
    let mut one_attempt = completion(&attempted.id, Outcome::RetryAt(1_600), 1_300);
    one_attempt.attempt = Some(Attempt {
        delivery_id: attempted.id.clone(),
        number: 1,
        wire_delivery_id: fresh_id("wire"),
        started_at: 1_250,
        status_code: Some(500),
        duration_ms: 5,
        error: None,
        response_body: None,
    });
    one_attempt.last_error = Some("HTTP 500".into());
    complete(&store, &[no_attempt, one_attempt]).await;

    let claimed = store
        .claim_due(5_000, 0, 500, 10, i64::MAX, &[])
        .await
        .expect("claim_due");
    let by_id = |id: &str| {
        claimed
            .iter()
            .find(|c| c.delivery.id == id)
            .unwrap_or_else(|| panic!("{id} claimed"))
            .delivery
            .clone()
    };
    assert_eq!(claimed.len(), 3);
    assert_eq!(by_id(&untouched.id), as_enqueued(&untouched));
    assert_eq!(
        claimed
            .iter()
            .map(|c| c.delivery.id.as_str())
            .collect::<Vec<_>>(),
        [
            untouched.id.as_str(),
            skipped.id.as_str(),
            attempted.id.as_str()
        ],
        "in the order they are due"
    );
    let skipped_now = by_id(&skipped.id);
    assert_eq!(
        (
            skipped_now.attempt_count,
            skipped_now.next_attempt_at,
            skipped_now.last_error.as_deref(),
            skipped_now.updated_at
        ),
        (0, Some(1_500), Some("nothing sent"), 1_200)
    );
    let attempted_now = by_id(&attempted.id);
    assert_eq!(
        (
            attempted_now.attempt_count,
            attempted_now.next_attempt_at,
            attempted_now.last_error.as_deref()
        ),
        (1, Some(1_600), Some("HTTP 500"))
    );
}

/// Completions record attempts, count them, and set status, next attempt and last error.
pub async fn complete_many_records_attempts_and_outcomes(store: SharedStore) {
    let app = new_app(&store, "completions").await;
    let webhook = new_webhook(&store, &app).await;
    let retried = delivery_for(&webhook, Some(1_000), 1, &[]);
    let succeeded = delivery_for(&webhook, Some(1_000), 2, &[]);
    let refused = delivery_for(&webhook, Some(1_000), 3, &[]);
    enqueue(
        &store,
        &[retried.clone(), succeeded.clone(), refused.clone()],
    )
    .await;

    let first_try = attempt(&retried.id, 1, Some(500), Some("HTTP 500"));
    let success = attempt(&succeeded.id, 1, Some(200), None);
    complete(
        &store,
        &[
            Completion {
                attempt: Some(first_try.clone()),
                last_error: Some("HTTP 500".to_string()),
                ..completion(&retried.id, Outcome::RetryAt(2_000), 1_500)
            },
            Completion {
                attempt: Some(success.clone()),
                ..completion(&succeeded.id, Outcome::Succeeded, 1_500)
            },
            Completion {
                last_error: Some("callback refused".to_string()),
                ..completion(&refused.id, Outcome::Failed, 1_500)
            },
        ],
    )
    .await;

    assert_eq!(
        delivery(&store, &app, &retried.id).await,
        Delivery {
            status: DeliveryStatus::Pending,
            attempt_count: 1,
            next_attempt_at: Some(2_000),
            last_error: Some("HTTP 500".to_string()),
            updated_at: 1_500,
            ..as_enqueued(&retried)
        }
    );
    assert_eq!(
        store.attempts(&retried.id).await.expect("attempts"),
        vec![first_try.clone()]
    );
    assert_eq!(
        delivery(&store, &app, &succeeded.id).await,
        Delivery {
            status: DeliveryStatus::Succeeded,
            attempt_count: 1,
            next_attempt_at: None,
            updated_at: 1_500,
            ..as_enqueued(&succeeded)
        }
    );
    assert_eq!(
        store.attempts(&succeeded.id).await.expect("attempts"),
        vec![success]
    );
    assert_eq!(
        delivery(&store, &app, &refused.id).await,
        Delivery {
            status: DeliveryStatus::Failed,
            attempt_count: 0,
            next_attempt_at: None,
            last_error: Some("callback refused".to_string()),
            updated_at: 1_500,
            ..as_enqueued(&refused)
        },
        "a completion without an attempt does not count one"
    );
    assert!(store
        .attempts(&refused.id)
        .await
        .expect("attempts")
        .is_empty());

    let second_try = attempt(&retried.id, 2, Some(204), None);
    complete(
        &store,
        &[Completion {
            attempt: Some(second_try.clone()),
            ..completion(&retried.id, Outcome::Succeeded, 2_500)
        }],
    )
    .await;
    let done = delivery(&store, &app, &retried.id).await;
    assert_eq!(
        (
            done.status,
            done.attempt_count,
            done.next_attempt_at,
            done.last_error
        ),
        (DeliveryStatus::Succeeded, 2, None, None)
    );
    assert_eq!(
        store.attempts(&retried.id).await.expect("attempts"),
        vec![first_try, second_try],
        "attempts in number order"
    );

    // A manual retry racing the dispatcher may report a number already taken: it is kept,
    // under the next free number, rather than lost or failing the whole batch.
    let clash = attempt(&retried.id, 2, Some(200), None);
    complete(
        &store,
        &[Completion {
            attempt: Some(clash.clone()),
            ..completion(&retried.id, Outcome::Succeeded, 3_000)
        }],
    )
    .await;
    let attempts = store.attempts(&retried.id).await.expect("attempts");
    assert_eq!(
        attempts.len(),
        3,
        "a clashing attempt number must not lose the attempt"
    );
    assert_eq!(attempts[2], Attempt { number: 3, ..clash });
    assert_eq!(delivery(&store, &app, &retried.id).await.attempt_count, 3);
}

/// A batch larger than any statement limit is applied whole, and several completions of one
/// delivery in one batch apply in order.
pub async fn complete_many_applies_large_and_repeating_batches_in_order(store: SharedStore) {
    const MANY: usize = 1_234;
    let app = new_app(&store, "big batches").await;
    let webhook = new_webhook(&store, &app).await;
    let deliveries: Vec<NewDelivery> = (0..MANY)
        .map(|i| delivery_for(&webhook, Some(1_000), i as Millis, &[]))
        .collect();
    enqueue(&store, &deliveries).await;
    let (_, total) = store
        .list_deliveries(
            &app.id,
            &webhook.id,
            &DeliveryFilter::default(),
            Page::default(),
        )
        .await
        .expect("list_deliveries");
    assert_eq!(total, MANY as i64, "a large enqueue stores every delivery");

    let mut completions: Vec<Completion> = deliveries
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let outcome = if i % 2 == 0 {
                Outcome::Succeeded
            } else {
                Outcome::Failed
            };
            Completion {
                attempt: Some(attempt(&d.id, 1, Some(200), None)),
                ..completion(&d.id, outcome, 2_000)
            }
        })
        .collect();
    // The first delivery again, later in the same batch: retried after all, then succeeded.
    let twice = &deliveries[0];
    completions.insert(
        1,
        Completion {
            attempt: Some(attempt(&twice.id, 2, Some(500), Some("HTTP 500"))),
            last_error: Some("HTTP 500".to_string()),
            ..completion(&twice.id, Outcome::RetryAt(3_000), 2_100)
        },
    );
    completions.push(Completion {
        attempt: Some(attempt(&twice.id, 3, Some(200), None)),
        ..completion(&twice.id, Outcome::Succeeded, 2_200)
    });
    complete(&store, &completions).await;

    let count = |status| {
        let store = store.clone();
        let app_id = app.id.clone();
        let webhook_id = webhook.id.clone();
        async move {
            let filter = DeliveryFilter {
                status: Some(status),
                vehicle_id: None,
            };
            store
                .list_deliveries(
                    &app_id,
                    &webhook_id,
                    &filter,
                    Page {
                        limit: 1,
                        offset: 0,
                    },
                )
                .await
                .expect("list_deliveries")
                .1
        }
    };
    assert_eq!(
        count(DeliveryStatus::Pending).await,
        0,
        "every completion of a large batch applies"
    );
    assert_eq!(
        count(DeliveryStatus::Succeeded).await,
        MANY.div_ceil(2) as i64
    );
    assert_eq!(count(DeliveryStatus::Failed).await, (MANY / 2) as i64);
    let last = delivery(&store, &app, &deliveries[MANY - 1].id).await;
    assert_eq!(
        (last.status, last.attempt_count),
        (DeliveryStatus::Failed, 1)
    );

    let first = delivery(&store, &app, &twice.id).await;
    assert_eq!(
        (
            first.status,
            first.attempt_count,
            first.next_attempt_at,
            first.updated_at
        ),
        (DeliveryStatus::Succeeded, 3, None, 2_200),
        "completions of one delivery apply in batch order"
    );
    let numbers: Vec<i64> = store
        .attempts(&twice.id)
        .await
        .expect("attempts")
        .iter()
        .map(|a| a.number)
        .collect();
    assert_eq!(numbers, vec![1, 2, 3]);
}

/// A completion may disable its webhook; the first reason sticks, and a webhook disabled by
/// hand keeps its own.
pub async fn complete_many_disables_a_webhook_once(store: SharedStore) {
    let app = new_app(&store, "disabling").await;
    let enabled = new_webhook(&store, &app).await;
    let unverified = webhook_of(&app, WebhookStatus::Unverified);
    let by_hand = webhook_of(&app, WebhookStatus::Disabled);
    for webhook in [&unverified, &by_hand] {
        store.create_webhook(webhook).await.expect("create_webhook");
    }
    let mut deliveries = Vec::new();
    for webhook in [&enabled, &enabled, &unverified, &by_hand] {
        deliveries.push(delivery_for(webhook, Some(1_000), 1, &[]));
    }
    enqueue(&store, &deliveries).await;
    let disabling = |d: &NewDelivery, reason: &str| Completion {
        disable_webhook: Some((d.webhook_id.clone(), reason.to_string())),
        ..completion(&d.id, Outcome::Failed, 3_000)
    };
    complete(
        &store,
        &[
            disabling(&deliveries[0], "410 Gone"),
            disabling(&deliveries[1], "retries exhausted"),
            disabling(&deliveries[2], "retries exhausted"),
            disabling(&deliveries[3], "410 Gone"),
        ],
    )
    .await;
    complete(&store, &[disabling(&deliveries[0], "later reason")]).await;

    let read = |id: &str| {
        let store = store.clone();
        let app_id = app.id.clone();
        let id = id.to_string();
        async move {
            store
                .webhook(&app_id, &id)
                .await
                .expect("webhook")
                .expect("webhook exists")
        }
    };
    let enabled_now = read(&enabled.id).await;
    assert_eq!(enabled_now.status, WebhookStatus::Disabled);
    assert_eq!(
        enabled_now.disabled_reason.as_deref(),
        Some("410 Gone"),
        "the first reason sticks"
    );
    assert_eq!(enabled_now.updated_at, 3_000);
    let unverified_now = read(&unverified.id).await;
    assert_eq!(
        (
            unverified_now.status,
            unverified_now.disabled_reason.as_deref()
        ),
        (WebhookStatus::Disabled, Some("retries exhausted"))
    );
    assert_eq!(
        read(&by_hand.id).await,
        by_hand,
        "a webhook disabled by hand keeps its state"
    );
}

/// A retry reported for a delivery that finished meanwhile (its webhook was deleted while the
/// attempt was in flight) records the attempt but does not put the delivery back in the outbox.
pub async fn retry_completion_never_revives_a_finished_delivery(store: SharedStore) {
    let app = new_app(&store, "late").await;
    let webhook = new_webhook(&store, &app).await;
    let d = delivery_for(&webhook, Some(1_000), 1, &[]);
    enqueue(&store, std::slice::from_ref(&d)).await;
    assert!(store
        .delete_webhook(&app.id, &webhook.id)
        .await
        .expect("delete_webhook"));
    complete(
        &store,
        &[Completion {
            attempt: Some(attempt(&d.id, 1, Some(503), Some("HTTP 503"))),
            last_error: Some("HTTP 503".to_string()),
            ..completion(&d.id, Outcome::RetryAt(9_000), 2_000)
        }],
    )
    .await;
    let after = delivery(&store, &app, &d.id).await;
    assert_eq!(
        after.status,
        DeliveryStatus::Failed,
        "a finished delivery stays finished"
    );
    assert_eq!(after.next_attempt_at, None);
    assert_eq!(
        after.last_error.as_deref(),
        Some("webhook deleted"),
        "and keeps why it finished"
    );
    assert_eq!(after.attempt_count, 1, "the attempt still counts");
    assert_eq!(store.attempts(&d.id).await.expect("attempts").len(), 1);
}

/// *Exclusive outbox.* `next_due_at` is the earliest due pending delivery; the depth counts
/// pending deliveries that have a due time.
pub async fn next_due_at_and_outbox_depth_follow_pending_deliveries(store: SharedStore) {
    drain_outbox(&store).await;
    assert_eq!(
        store.next_due_at().await.expect("next_due_at"),
        None,
        "nothing is due after a drain"
    );
    let depth = store.outbox_depth().await.expect("outbox_depth");
    let app = new_app(&store, "depth").await;
    let webhook = new_webhook(&store, &app).await;
    let a = delivery_for(&webhook, Some(3_000), 1, &[]);
    let b = delivery_for(&webhook, Some(2_000), 2, &[]);
    let verify = delivery_for(&webhook, None, 3, &[]);
    enqueue(&store, &[a.clone(), b.clone(), verify]).await;
    let state = || {
        let store = store.clone();
        async move {
            (
                store.next_due_at().await.expect("next_due_at"),
                store.outbox_depth().await.expect("outbox_depth") - depth,
            )
        }
    };
    assert_eq!(
        state().await,
        (Some(2_000), 2),
        "a delivery without a due time is not in the outbox"
    );
    complete(&store, &[completion(&b.id, Outcome::Succeeded, 2_100)]).await;
    assert_eq!(state().await, (Some(3_000), 1));
    complete(&store, &[completion(&a.id, Outcome::RetryAt(7_000), 3_100)]).await;
    assert_eq!(state().await, (Some(7_000), 1));
    complete(&store, &[completion(&a.id, Outcome::Failed, 7_100)]).await;
    assert_eq!(state().await, (None, 0));
}

/// *Exclusive outbox.* Releasing all leases makes every claimed delivery claimable again.
pub async fn release_all_leases_frees_claimed_deliveries(store: SharedStore) {
    drain_outbox(&store).await;
    let app = new_app(&store, "restart").await;
    let webhook = new_webhook(&store, &app).await;
    let x = delivery_for(&webhook, Some(1_000), 1, &[]);
    let y = delivery_for(&webhook, Some(1_000), 2, &[]);
    enqueue(&store, &[x.clone(), y.clone()]).await;
    assert_eq!(
        claim(&store, 5_000, 100, 10_000, 10).await,
        vec![x.id.clone(), y.id.clone()]
    );
    assert!(claim(&store, 5_000, 100, 10_000, 10).await.is_empty());
    assert_eq!(
        store
            .release_all_leases()
            .await
            .expect("release_all_leases"),
        2
    );
    assert_eq!(
        claim(&store, 5_000, 100, 10_000, 10).await,
        vec![x.id, y.id],
        "claimable after release"
    );
}

/// The log lists a webhook's deliveries newest first (ties: last inserted first), filtered by
/// status and vehicle, paged with the total, within the application only.
pub async fn delivery_log_is_app_scoped_newest_first_and_filtered(store: SharedStore) {
    let app = new_app(&store, "log").await;
    let other = new_app(&store, "other log").await;
    let webhook = new_webhook(&store, &app).await;
    let va = fresh_id("veh");
    let vb = fresh_id("veh");
    let d1 = delivery_for(&webhook, Some(1_000), 1_000, &[&va]);
    let d2 = delivery_for(&webhook, Some(1_000), 3_000, &[&vb]);
    let d3 = delivery_for(&webhook, Some(1_000), 2_000, &[&va, &vb]);
    let d4 = delivery_for(&webhook, Some(1_000), 3_000, &[&va, &va]);
    enqueue(&store, &[d1.clone(), d2.clone(), d3.clone()]).await;
    enqueue(&store, std::slice::from_ref(&d4)).await;
    complete(
        &store,
        &[
            completion(&d2.id, Outcome::Succeeded, 4_000),
            completion(&d1.id, Outcome::Failed, 4_000),
        ],
    )
    .await;

    let list = |filter: DeliveryFilter, limit, offset| {
        let store = store.clone();
        let app_id = app.id.clone();
        let webhook_id = webhook.id.clone();
        async move {
            let (deliveries, total) = store
                .list_deliveries(&app_id, &webhook_id, &filter, Page { limit, offset })
                .await
                .expect("list_deliveries");
            (
                deliveries.into_iter().map(|d| d.id).collect::<Vec<_>>(),
                total,
            )
        }
    };
    let ids = |ds: &[&NewDelivery]| ds.iter().map(|d| d.id.clone()).collect::<Vec<_>>();
    let all = DeliveryFilter::default;
    let status = |s| DeliveryFilter {
        status: Some(s),
        vehicle_id: None,
    };
    assert_eq!(
        list(all(), 50, 0).await,
        (ids(&[&d4, &d2, &d3, &d1]), 4),
        "newest first"
    );
    assert_eq!(list(all(), 2, 1).await, (ids(&[&d2, &d3]), 4), "paged");
    assert_eq!(
        list(status(DeliveryStatus::Pending), 50, 0).await,
        (ids(&[&d4, &d3]), 2)
    );
    assert_eq!(
        list(status(DeliveryStatus::Succeeded), 50, 0).await,
        (ids(&[&d2]), 1)
    );
    assert_eq!(
        list(status(DeliveryStatus::Failed), 50, 0).await,
        (ids(&[&d1]), 1)
    );
    let by_vehicle = |vehicle: &str, status| DeliveryFilter {
        status,
        vehicle_id: Some(vehicle.to_string()),
    };
    assert_eq!(
        list(by_vehicle(&va, None), 50, 0).await,
        (ids(&[&d4, &d3, &d1]), 3),
        "by vehicle"
    );
    assert_eq!(
        list(by_vehicle(&vb, Some(DeliveryStatus::Pending)), 50, 0).await,
        (ids(&[&d3]), 1),
        "by vehicle and status"
    );
    assert_eq!(
        list(by_vehicle(&fresh_id("veh"), None), 50, 0).await,
        (vec![], 0)
    );

    let (foreign, total) = store
        .list_deliveries(
            &other.id,
            &webhook.id,
            &DeliveryFilter::default(),
            Page::default(),
        )
        .await
        .expect("list_deliveries");
    assert!(
        foreign.is_empty() && total == 0,
        "another application sees no log"
    );
    assert_eq!(
        store.delivery(&other.id, &d1.id).await.expect("delivery"),
        None
    );
    let read = delivery(&store, &app, &d4.id).await;
    assert_eq!(
        read.vehicle_ids,
        vec![va.clone(), va],
        "vehicle ids are kept as given"
    );
}

// --- dashboard ------------------------------------------------------------------------------

/// An attempt that started at `started_at` and took `duration_ms`.
fn timed_attempt(
    delivery_id: &str,
    number: i64,
    started_at: Millis,
    duration_ms: i64,
    error: Option<&str>,
) -> Attempt {
    Attempt {
        started_at,
        duration_ms,
        ..attempt(
            delivery_id,
            number,
            error.map_or(Some(200), |_| Some(500)),
            error,
        )
    }
}

fn attempted(attempt: Attempt, outcome: Outcome) -> Completion {
    Completion {
        delivery_id: attempt.delivery_id.clone(),
        at: attempt.started_at + attempt.duration_ms,
        last_error: attempt.error.clone(),
        attempt: Some(attempt),
        outcome,
        disable_webhook: None,
    }
}

pub async fn attempt_stats_count_by_webhook_minute_outcome_and_latency(store: SharedStore) {
    let app = new_app(&store, "stats").await;
    let other = new_app(&store, "other stats").await;
    let a = new_webhook(&store, &app).await;
    let b = new_webhook(&store, &app).await;
    let foreign = new_webhook(&store, &other).await;
    // Minute boundaries far from other cases' times.
    let m0: Millis = 1_000 * MINUTE_MS;
    let m1 = m0 + MINUTE_MS;
    let ok_a = delivery_for(&a, Some(m0), m0, &[]);
    let retried_then_ok = delivery_for(&a, Some(m0), m0, &[]);
    let failed_b = delivery_for(&b, Some(m0), m0, &[]);
    let pending_b = delivery_for(&b, Some(m0), m0, &[]);
    let theirs = delivery_for(&foreign, Some(m0), m0, &[]);
    let before = delivery_for(&a, Some(m0), m0, &[]);
    enqueue(
        &store,
        &[
            ok_a.clone(),
            retried_then_ok.clone(),
            failed_b.clone(),
            pending_b.clone(),
            theirs.clone(),
            before.clone(),
        ],
    )
    .await;
    complete(
        &store,
        &[
            attempted(
                timed_attempt(&ok_a.id, 1, m0 + 5, 4, None),
                Outcome::Succeeded,
            ),
            attempted(
                timed_attempt(&retried_then_ok.id, 1, m0 + 10, 900, Some("HTTP 500")),
                Outcome::RetryAt(m1),
            ),
            attempted(
                timed_attempt(&failed_b.id, 1, m0 + 20, 15_001, Some("timed out")),
                Outcome::Failed,
            ),
            attempted(
                timed_attempt(&pending_b.id, 1, m1 + 1, 2, Some("HTTP 503")),
                Outcome::RetryAt(m1 + 10 * MINUTE_MS),
            ),
            attempted(
                timed_attempt(&theirs.id, 1, m0 + 30, 4, None),
                Outcome::Succeeded,
            ),
            // Before the window: not counted.
            attempted(
                timed_attempt(&before.id, 1, m0 - 1, 4, None),
                Outcome::Succeeded,
            ),
        ],
    )
    .await;
    complete(
        &store,
        &[attempted(
            timed_attempt(&retried_then_ok.id, 2, m1 + 2, 4, None),
            Outcome::Succeeded,
        )],
    )
    .await;

    let sorted = |mut rows: Vec<AttemptCount>| {
        rows.sort_by(|x, y| {
            (&x.webhook_id, x.minute, x.outcome, x.latency_bucket).cmp(&(
                &y.webhook_id,
                y.minute,
                y.outcome,
                y.latency_bucket,
            ))
        });
        rows
    };
    let row = |webhook: &Webhook, minute, outcome, ms, count| AttemptCount {
        webhook_id: webhook.id.clone(),
        minute,
        outcome,
        latency_bucket: latency_bucket(ms),
        count,
    };
    let all = store
        .attempt_stats(&app.id, None, m0, m1 + MINUTE_MS)
        .await
        .expect("attempt_stats");
    let mut expected = vec![
        row(&a, m0, AttemptOutcome::Succeeded, 4, 1),
        row(&a, m0, AttemptOutcome::Retried, 900, 1),
        row(&a, m1, AttemptOutcome::Succeeded, 4, 1),
        row(&b, m0, AttemptOutcome::Failed, 15_001, 1),
        row(&b, m1, AttemptOutcome::Retried, 2, 1),
    ];
    expected = sorted(expected);
    assert_eq!(
        sorted(all),
        expected,
        "counted by webhook, minute, outcome and latency bucket; another app's and earlier attempts left out"
    );

    let only_a = store
        .attempt_stats(&app.id, Some(&a.id), m0, m1 + MINUTE_MS)
        .await
        .expect("attempt_stats of one webhook");
    assert!(
        only_a.iter().all(|r| r.webhook_id == a.id) && only_a.len() == 3,
        "one webhook's counts: {only_a:?}"
    );
    let first_minute = store
        .attempt_stats(&app.id, None, m0, m1)
        .await
        .expect("attempt_stats of one minute");
    assert_eq!(
        first_minute.iter().map(|r| r.count).sum::<i64>(),
        3,
        "the window's end is exclusive"
    );
    let foreign_view = store
        .attempt_stats(&other.id, Some(&a.id), m0, m1 + MINUTE_MS)
        .await
        .expect("attempt_stats of another app's webhook");
    assert!(
        foreign_view.is_empty(),
        "another application's webhook shows nothing"
    );
}

pub async fn vehicle_deliveries_span_webhooks_newest_first_within_the_app(store: SharedStore) {
    let app = new_app(&store, "vehicle log").await;
    let other = new_app(&store, "other vehicle log").await;
    let a = new_webhook(&store, &app).await;
    let b = new_webhook(&store, &app).await;
    let foreign = new_webhook(&store, &other).await;
    let car = fresh_id("veh");
    let elsewhere = fresh_id("veh");
    let d1 = delivery_for(&a, Some(1_000), 1_000, &[&car]);
    let d2 = delivery_for(&b, Some(1_000), 3_000, &[&car, &elsewhere]);
    let d3 = delivery_for(&a, Some(1_000), 2_000, &[&elsewhere]);
    let d4 = delivery_for(&foreign, Some(1_000), 4_000, &[&car]);
    enqueue(&store, &[d1.clone(), d2.clone(), d3, d4]).await;
    let ids = |ds: Vec<Delivery>| ds.into_iter().map(|d| d.id).collect::<Vec<_>>();
    assert_eq!(
        ids(store
            .vehicle_deliveries(&app.id, &car, 50)
            .await
            .expect("vehicle_deliveries")),
        vec![d2.id.clone(), d1.id],
        "both webhooks, newest first, only this app"
    );
    assert_eq!(
        ids(store
            .vehicle_deliveries(&app.id, &car, 1)
            .await
            .expect("vehicle_deliveries")),
        vec![d2.id],
        "limited"
    );
    assert!(store
        .vehicle_deliveries(&app.id, &fresh_id("veh"), 50)
        .await
        .expect("vehicle_deliveries")
        .is_empty());
}
