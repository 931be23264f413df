//! Triggers: decide when a webhook is due. Time-based kinds (scheduled, dynamic) fire from the
//! trigger loop in `engine`; the hooks below keep their due times right when webhooks,
//! subscriptions and vehicle state change.

pub mod batch;
pub mod dynamic;
pub mod engine;
pub mod schedule;
pub mod scheduled;

pub use engine::Triggers;

use crate::clock::Millis;
use crate::model::{Webhook, WebhookKind};
use crate::store::{IngestApplied, Store, StoreResult};

/// After a webhook is created or its settings change: restart a scheduled webhook's cadence
/// from the next boundary (other kinds have none).
pub async fn on_webhook_saved(
    store: &dyn Store,
    webhook: &Webhook,
    now: Millis,
) -> StoreResult<()> {
    store
        .schedule_set(&webhook.id, scheduled::first_boundary(webhook, now))
        .await
}

/// After a vehicle subscribes: a dynamic subscription is first due an hour later.
pub async fn on_subscribe(
    store: &dyn Store,
    webhook: &Webhook,
    vehicle_id: &str,
    now: Millis,
) -> StoreResult<()> {
    if webhook.kind == WebhookKind::Dynamic {
        store
            .set_subscription_due(&webhook.id, vehicle_id, Some(now + dynamic::HOURLY_MS))
            .await?;
    }
    Ok(())
}

/// After an ingest: an EV that was just plugged in moves to the 30-minute cadence at once, so
/// its next dynamic delivery is at most 30 minutes away. Returns whether trigger times moved.
pub async fn on_ingest(
    store: &dyn Store,
    vehicle_id: &str,
    applied: &IngestApplied,
    now: Millis,
) -> StoreResult<bool> {
    let plugged_in = applied.changes.iter().any(|c| {
        c.code == "charge-ischargingcableconnected"
            && c.current.get("value").and_then(|v| v.as_bool()) == Some(true)
    });
    if plugged_in {
        return Ok(store
            .pull_dynamic_due(vehicle_id, now + dynamic::PLUGGED_IN_MS)
            .await?
            > 0);
    }
    Ok(false)
}
