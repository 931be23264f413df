//! The Postgres store: the conformance suite, each case on a database of its own, and what
//! only a shared store shows: several nodes (store handles) on one database splitting claims,
//! keeping each other's leases, and taking over the leases of a node that died.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use super::scratch::ScratchDatabase;
use super::{PgSettings, PgStore};
use crate::clock::real_now_ms;
use crate::model::*;
use crate::store::conformance::{self, conformance_cases};
use crate::store::{DynamicAdvance, ScheduleProgress, SharedStore, Store};

/// Small pools: many tests run at once against one server.
fn settings(trigger_lease: Duration) -> PgSettings {
    PgSettings {
        pool_size: 4,
        trigger_lease,
    }
}

async fn scratch() -> ScratchDatabase {
    ScratchDatabase::create()
        .await
        .expect("the Postgres tests need a server (see FLEETHOOK_TEST_POSTGRES_URL)")
}

async fn node(db: &ScratchDatabase, trigger_lease: Duration) -> Arc<PgStore> {
    Arc::new(
        PgStore::open_with(db.url(), settings(trigger_lease))
            .await
            .expect("open the Postgres store"),
    )
}

async fn fresh() -> (ScratchDatabase, SharedStore) {
    let db = scratch().await;
    let store = node(&db, Duration::from_secs(5)).await;
    (db, store)
}

/// One test per conformance case, each on a database of its own.
macro_rules! postgres_conformance {
    ($($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let (_db, store) = fresh().await;
                conformance::$case(store).await;
            }
        )*
    };
}

conformance_cases!(postgres_conformance);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_run_all_shares_one_database() {
    let (_db, store) = fresh().await;
    conformance::run_all(store).await;
}

// --- fixtures for several nodes -------------------------------------------------------------

struct Fleet {
    app: App,
    webhook: Webhook,
    vehicles: Vec<Vehicle>,
}

async fn fleet(store: &dyn Store, kind: WebhookKind, config: serde_json::Value, n: usize) -> Fleet {
    let id = |p: &str| format!("{p}-{}", uuid::Uuid::new_v4().simple());
    let app = App {
        id: id("app"),
        name: "nodes".into(),
        management_token: id("amt"),
        created_at: 1_000,
    };
    store.create_app(&app).await.expect("create_app");
    let webhook = Webhook {
        id: id("wh"),
        app_id: app.id.clone(),
        name: "shared".into(),
        kind,
        callback_uri: "https://receiver.example/hook".into(),
        error_callback_uri: None,
        config,
        status: WebhookStatus::Enabled,
        disabled_reason: None,
        signing_secret: id("whsec"),
        previous_secret: None,
        previous_secret_expires_at: None,
        max_payload_bytes: 50_000,
        created_at: 1_000,
        updated_at: 1_000,
    };
    store
        .create_webhook(&webhook)
        .await
        .expect("create_webhook");
    let mut vehicles = Vec::new();
    for i in 0..n {
        let vehicle = Vehicle {
            id: format!("veh-{i:04}"),
            app_id: app.id.clone(),
            user_id: "user".into(),
            access_token: id("vat"),
            make: "TESLA".into(),
            model: "Model 3".into(),
            year: 2020,
            vin: format!("VIN{i:014}"),
            mode: VehicleMode::Live,
            simulated: false,
            created_at: 1_000,
        };
        store
            .create_vehicle(&vehicle)
            .await
            .expect("create_vehicle");
        store
            .subscribe(&webhook.id, &vehicle.id, 1_000)
            .await
            .expect("subscribe");
        vehicles.push(vehicle);
    }
    Fleet {
        app,
        webhook,
        vehicles,
    }
}

fn payload(fleet: &Fleet, next_attempt_at: Option<i64>) -> NewDelivery {
    let id = format!("dlv-{}", uuid::Uuid::new_v4().simple());
    NewDelivery {
        body: format!("{{\"id\":\"{id}\"}}"),
        id,
        app_id: fleet.app.id.clone(),
        webhook_id: fleet.webhook.id.clone(),
        event_id: format!("evt-{}", uuid::Uuid::new_v4().simple()),
        purpose: DeliveryPurpose::Event,
        target_uri: fleet.webhook.callback_uri.clone(),
        event_type: "scheduled".into(),
        vehicle_ids: vec![],
        next_attempt_at,
        created_at: 1_000,
    }
}

// --- the outbox across nodes ------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_claims_of_two_nodes_are_disjoint_and_cover_the_outbox() {
    let db = scratch().await;
    let (a, b) = (
        node(&db, Duration::from_secs(5)).await,
        node(&db, Duration::from_secs(5)).await,
    );
    let f = fleet(a.as_ref(), WebhookKind::VehicleState, json!({}), 0).await;
    let all: Vec<NewDelivery> = (0..300).map(|_| payload(&f, Some(1_000))).collect();
    a.enqueue_many(&all).await.expect("enqueue_many");

    let lease_until = real_now_ms() + 600_000;
    let drain = |store: Arc<PgStore>| async move {
        let mut mine = Vec::new();
        loop {
            let claimed = store
                .claim_due(5_000, real_now_ms(), lease_until, 7, i64::MAX, &[])
                .await
                .expect("claim_due");
            if claimed.is_empty() {
                return mine;
            }
            mine.extend(claimed.into_iter().map(|c| c.delivery.id));
        }
    };
    let (got_a, got_b) = tokio::join!(
        tokio::spawn(drain(a.clone())),
        tokio::spawn(drain(b.clone()))
    );
    let (got_a, got_b) = (got_a.expect("node a"), got_b.expect("node b"));
    let set_a: HashSet<&String> = got_a.iter().collect();
    let set_b: HashSet<&String> = got_b.iter().collect();
    assert!(
        set_a.is_disjoint(&set_b),
        "no delivery is claimed by both nodes"
    );
    assert_eq!(
        set_a.len() + set_b.len(),
        all.len(),
        "every delivery is claimed once"
    );
    assert_eq!(
        got_a.len() + got_b.len(),
        all.len(),
        "and never twice by one node"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_starting_node_releases_only_its_own_leases() {
    let db = scratch().await;
    let (a, b) = (
        node(&db, Duration::from_secs(5)).await,
        node(&db, Duration::from_secs(5)).await,
    );
    let f = fleet(a.as_ref(), WebhookKind::VehicleState, json!({}), 0).await;
    let (x, y) = (payload(&f, Some(1_000)), payload(&f, Some(1_000)));
    a.enqueue_many(&[x.clone(), y.clone()])
        .await
        .expect("enqueue_many");
    let lease_until = real_now_ms() + 600_000;
    let by_a = a
        .claim_due(5_000, real_now_ms(), lease_until, 1, i64::MAX, &[])
        .await
        .expect("claim");
    let by_b = b
        .claim_due(5_000, real_now_ms(), lease_until, 1, i64::MAX, &[])
        .await
        .expect("claim");
    assert_eq!((by_a.len(), by_b.len()), (1, 1));

    // A third node starts: it holds nothing and must free nothing.
    let c = node(&db, Duration::from_secs(5)).await;
    assert_eq!(c.release_all_leases().await.expect("release"), 0);
    assert!(
        c.claim_due(5_000, real_now_ms(), lease_until, 10, i64::MAX, &[])
            .await
            .expect("claim")
            .is_empty(),
        "live leases of other nodes hold"
    );
    assert_eq!(
        a.release_all_leases().await.expect("release"),
        1,
        "a frees its own one"
    );
    let taken = c
        .claim_due(5_000, real_now_ms(), lease_until, 10, i64::MAX, &[])
        .await
        .expect("claim");
    assert_eq!(
        taken.iter().map(|t| &t.delivery.id).collect::<Vec<_>>(),
        vec![&by_a[0].delivery.id],
        "only the released delivery is claimable; b's stays with b"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_nodes_expired_lease_is_taken_over_and_its_late_completion_keeps_the_new_lease() {
    let db = scratch().await;
    let (dead, alive) = (
        node(&db, Duration::from_secs(5)).await,
        node(&db, Duration::from_secs(5)).await,
    );
    let f = fleet(dead.as_ref(), WebhookKind::VehicleState, json!({}), 0).await;
    let d = payload(&f, Some(1_000));
    dead.enqueue_many(std::slice::from_ref(&d))
        .await
        .expect("enqueue_many");
    // The first node's lease is already over (it stopped answering long ago).
    let now = real_now_ms();
    assert_eq!(
        dead.claim_due(5_000, now, now - 1, 10, i64::MAX, &[])
            .await
            .expect("claim")
            .len(),
        1
    );
    let taken = alive
        .claim_due(5_000, now, now + 600_000, 10, i64::MAX, &[])
        .await
        .expect("claim");
    assert_eq!(taken.len(), 1, "an expired lease is taken over");

    // The first node comes back and reports its attempt: recorded, but the live lease of
    // the node now sending it stays.
    dead.complete_many(&[Completion {
        delivery_id: d.id.clone(),
        attempt: None,
        outcome: Outcome::RetryAt(2_000),
        last_error: Some("HTTP 503".into()),
        disable_webhook: None,
        at: 1_500,
    }])
    .await
    .expect("complete_many");
    assert!(
        dead.claim_due(5_000, real_now_ms(), now + 600_000, 10, i64::MAX, &[])
            .await
            .expect("claim")
            .is_empty(),
        "the new owner's lease survives the late completion"
    );
    alive
        .complete_many(&[Completion {
            delivery_id: d.id.clone(),
            attempt: None,
            outcome: Outcome::Succeeded,
            last_error: None,
            disable_webhook: None,
            at: 2_500,
        }])
        .await
        .expect("complete_many");
    let after = alive
        .delivery(&f.app.id, &d.id)
        .await
        .expect("delivery")
        .expect("exists");
    assert_eq!(after.status, DeliveryStatus::Succeeded);
}

// --- time-based triggers across nodes --------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_due_schedule_is_claimed_by_one_node_while_its_lease_lives() {
    let db = scratch().await;
    let (a, b) = (
        node(&db, Duration::from_secs(600)).await,
        node(&db, Duration::from_secs(600)).await,
    );
    let f = fleet(a.as_ref(), WebhookKind::Scheduled, json!({}), 3).await;
    a.schedule_set(&f.webhook.id, Some(10_000))
        .await
        .expect("schedule_set");
    let got = a.due_schedules(10_000, 10).await.expect("due_schedules");
    assert_eq!(got.len(), 1);
    assert!(
        b.due_schedules(10_000, 10)
            .await
            .expect("due_schedules")
            .is_empty(),
        "the other node skips a schedule under a live lease"
    );
    // A page with more to come renews the lease; the last page ends it with the boundary.
    let page = ScheduleProgress {
        webhook_id: f.webhook.id.clone(),
        boundary_at: 10_000,
        expected_cursor: None,
        delivering_boundary_at: 10_000,
        new_cursor: Some(f.vehicles[1].id.clone()),
        next_boundary_at: None,
    };
    assert!(a
        .schedule_progress(&page, &[payload(&f, Some(10_000))])
        .await
        .expect("progress"));
    assert!(b
        .due_schedules(10_000, 10)
        .await
        .expect("due_schedules")
        .is_empty());
    let last = ScheduleProgress {
        expected_cursor: page.new_cursor.clone(),
        new_cursor: None,
        next_boundary_at: Some(20_000),
        ..page.clone()
    };
    assert!(a
        .schedule_progress(&last, &[payload(&f, Some(10_000))])
        .await
        .expect("progress"));
    let next = b.due_schedules(20_000, 10).await.expect("due_schedules");
    assert_eq!(
        next.iter()
            .map(|s| (s.boundary_at, s.cursor.clone()))
            .collect::<Vec<_>>(),
        vec![(20_000, None)],
        "the next boundary is free for any node"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schedule_whose_lease_ran_out_is_resumed_by_another_node_and_the_late_step_is_refused() {
    let db = scratch().await;
    // The first node's trigger leases end as soon as they are taken: as if it died at once.
    let dying = node(&db, Duration::ZERO).await;
    let other = node(&db, Duration::from_secs(600)).await;
    let f = fleet(other.as_ref(), WebhookKind::Scheduled, json!({}), 2).await;
    other
        .schedule_set(&f.webhook.id, Some(10_000))
        .await
        .expect("schedule_set");
    assert_eq!(dying.due_schedules(10_000, 10).await.expect("due").len(), 1);
    let resumed = other.due_schedules(10_000, 10).await.expect("due");
    assert_eq!(resumed.len(), 1, "an expired lease is taken over");
    let step = ScheduleProgress {
        webhook_id: f.webhook.id.clone(),
        boundary_at: 10_000,
        expected_cursor: None,
        delivering_boundary_at: 10_000,
        new_cursor: None,
        next_boundary_at: Some(20_000),
    };
    assert!(other
        .schedule_progress(&step, &[payload(&f, Some(10_000))])
        .await
        .expect("progress"));
    assert!(
        !dying
            .schedule_progress(&step, &[payload(&f, Some(10_000))])
            .await
            .expect("progress"),
        "the same boundary is never delivered twice"
    );
    let (log, total) = other
        .list_deliveries(
            &f.app.id,
            &f.webhook.id,
            &Default::default(),
            Page::default(),
        )
        .await
        .expect("list_deliveries");
    assert_eq!((log.len(), total), (1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn due_dynamic_subscriptions_are_split_between_nodes_and_a_refused_batch_frees_its_rows() {
    let db = scratch().await;
    let (a, b) = (
        node(&db, Duration::from_secs(600)).await,
        node(&db, Duration::from_secs(600)).await,
    );
    let f = fleet(a.as_ref(), WebhookKind::Dynamic, json!({}), 4).await;
    for v in &f.vehicles {
        a.set_subscription_due(&f.webhook.id, &v.id, Some(5_000))
            .await
            .expect("due");
    }
    let first = a.due_dynamic(5_000, 3).await.expect("due_dynamic");
    let second = b.due_dynamic(5_000, 10).await.expect("due_dynamic");
    assert_eq!(
        (first.len(), second.len()),
        (3, 1),
        "the nodes split the due rows"
    );
    assert!(a
        .due_dynamic(5_000, 10)
        .await
        .expect("due_dynamic")
        .is_empty());

    // One of a's rows moves meanwhile (an EV plugged in): a's whole batch is refused and its
    // rows are free again at once.
    a.pull_dynamic_due(&first[0].vehicle.id, 4_000)
        .await
        .expect("pull");
    let advances: Vec<DynamicAdvance> = first
        .iter()
        .map(|d| DynamicAdvance {
            webhook_id: d.webhook.id.clone(),
            vehicle_id: d.vehicle.id.clone(),
            due_at: d.due_at,
            next_due_at: d.due_at + 3_600_000,
        })
        .collect();
    assert!(!a
        .dynamic_progress(&advances, &[payload(&f, Some(5_000))])
        .await
        .expect("progress"));
    let again = b.due_dynamic(5_000, 10).await.expect("due_dynamic");
    assert_eq!(again.len(), 3, "the refused rows are due for any node");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_node_at_a_time_leads_and_an_expired_leader_is_replaced() {
    let db = scratch().await;
    let (a, b) = (
        node(&db, Duration::from_secs(5)).await,
        node(&db, Duration::from_secs(5)).await,
    );
    assert!(a.lead("simulator", 600_000).await.expect("lead"));
    assert!(
        !b.lead("simulator", 600_000).await.expect("lead"),
        "a holds it"
    );
    assert!(
        a.lead("simulator", 0).await.expect("lead"),
        "the leader renews"
    );
    // a's lease is now over: b takes it, and a has lost it.
    assert!(b.lead("simulator", 600_000).await.expect("lead"));
    assert!(!a.lead("simulator", 600_000).await.expect("lead"));
    assert!(
        a.lead("other role", 600_000).await.expect("lead"),
        "roles are separate"
    );
}

#[tokio::test]
async fn payload_bodies_come_back_byte_for_byte() {
    let (_db, store) = fresh().await;
    let f = fleet(store.as_ref(), WebhookKind::VehicleState, json!({}), 0).await;
    // Key order, spacing, number spelling and escapes that JSONB would all rewrite.
    let body = r#"{"z":1.50,"a":{"é":"\u00e9 \ud83d\ude97","n":1e3},"list":[ ]}"#;
    let d = NewDelivery {
        body: body.to_string(),
        ..payload(&f, Some(1_000))
    };
    store
        .enqueue_many(std::slice::from_ref(&d))
        .await
        .expect("enqueue_many");
    let read = store
        .delivery(&f.app.id, &d.id)
        .await
        .expect("delivery")
        .expect("exists");
    assert_eq!(read.body.as_bytes(), body.as_bytes());
}
