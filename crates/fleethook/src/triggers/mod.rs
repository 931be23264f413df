//! Triggers: decide when a webhook is due. Time-based kinds (scheduled, dynamic) fire from the
//! trigger loop in `engine`; the hooks below keep their due times right when webhooks,
//! subscriptions and vehicle state change.

pub mod batch;
pub mod diagnostics;
pub mod dynamic;
pub mod engine;
#[cfg(test)]
mod fixtures;
pub mod schedule;
pub mod scheduled;
pub mod vehicle_state;

pub use engine::Triggers;

use std::collections::HashMap;
use std::sync::Arc;

use fleethook_wire::signal::SignalValue;

use crate::clock::Millis;
use crate::model::{NewDelivery, Vehicle, Webhook, WebhookKind, WebhookStatus};
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

/// After a vehicle subscribes (`new`: it was not subscribed before): a dynamic subscription
/// is first due an hour later; an enabled vehicleState webhook gets its first delivery, on a
/// resubscribe too. Returns the payloads enqueued.
pub async fn on_subscribe(
    store: &dyn Store,
    webhook: &Webhook,
    vehicle: &Vehicle,
    new: bool,
    now: Millis,
) -> StoreResult<usize> {
    if webhook.kind == WebhookKind::Dynamic && new {
        store
            .set_subscription_due(&webhook.id, &vehicle.id, Some(now + dynamic::HOURLY_MS))
            .await?;
    }
    if webhook.kind == WebhookKind::VehicleState && webhook.status == WebhookStatus::Enabled {
        let signals = store.signals(&vehicle.id).await?;
        let deliveries = vehicle_state::first_delivery(webhook, vehicle, &signals, now);
        store.enqueue_many(&deliveries).await?;
        return Ok(deliveries.len());
    }
    Ok(0)
}

/// After a webhook becomes enabled (verified, or enabled again): a vehicleState webhook sends
/// every subscribed vehicle its first delivery again. Returns the payloads enqueued.
pub async fn on_enabled(store: &dyn Store, webhook: &Webhook, now: Millis) -> StoreResult<usize> {
    if webhook.kind != WebhookKind::VehicleState {
        return Ok(0);
    }
    let mut enqueued = 0;
    let mut after: Option<String> = None;
    loop {
        let page = store
            .schedule_page(&webhook.id, i64::MAX, after.as_deref(), scheduled::PAGE)
            .await?;
        let Some(last) = page.last() else {
            return Ok(enqueued);
        };
        after = Some(last.vehicle.id.clone());
        let deliveries: Vec<NewDelivery> = page
            .iter()
            .flat_map(|v| vehicle_state::first_delivery(webhook, &v.vehicle, &v.signals, now))
            .collect();
        store.enqueue_many(&deliveries).await?;
        enqueued += deliveries.len();
        if (page.len() as i64) < scheduled::PAGE {
            return Ok(enqueued);
        }
    }
}

/// The webhooks whose payloads depend on a vehicle's changes: its enabled eventBased and
/// vehicleState subscriptions. Read before an ingest so the ingest's transaction can render.
pub async fn change_webhooks(
    store: &dyn Store,
    vehicle_id: &str,
) -> StoreResult<Vec<Arc<Webhook>>> {
    let mut webhooks = store.subscribed_webhooks(vehicle_id).await?;
    webhooks.retain(wants_changes);
    Ok(webhooks.into_iter().map(Arc::new).collect())
}

/// [`change_webhooks`] of several vehicles in one store read, by vehicle id.
pub async fn change_webhooks_many(
    store: &dyn Store,
    vehicle_ids: &[&str],
) -> StoreResult<HashMap<String, Vec<Arc<Webhook>>>> {
    let mut by_vehicle = store.subscribed_webhooks_many(vehicle_ids).await?;
    for webhooks in by_vehicle.values_mut() {
        webhooks.retain(|webhook| wants_changes(webhook));
    }
    Ok(by_vehicle)
}

/// Whether a webhook renders payloads from changes: an enabled eventBased or vehicleState one.
fn wants_changes(webhook: &Webhook) -> bool {
    webhook.status == WebhookStatus::Enabled
        && matches!(
            webhook.kind,
            WebhookKind::EventBased | WebhookKind::VehicleState
        )
}

/// The payloads one ingest's changes call for, from the vehicle's signals as the ingest left
/// them: diagnostics events and vehicle-state deliveries of `webhooks`.
pub fn render_changes(
    webhooks: &[Arc<Webhook>],
    vehicle: &Vehicle,
    applied: &IngestApplied,
    signals_after: &HashMap<String, SignalValue>,
    now: Millis,
) -> Vec<NewDelivery> {
    let mut deliveries = Vec::new();
    for webhook in webhooks {
        match webhook.kind {
            WebhookKind::EventBased => {
                deliveries.extend(diagnostics::on_change(webhook, vehicle, applied, now))
            }
            WebhookKind::VehicleState => deliveries.extend(vehicle_state::on_change(
                webhook,
                vehicle,
                applied,
                signals_after,
                now,
            )),
            WebhookKind::Scheduled | WebhookKind::Dynamic => {}
        }
    }
    deliveries
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
