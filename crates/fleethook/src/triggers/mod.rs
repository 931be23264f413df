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

/// The payloads one ingest's changes call for: diagnostics events and vehicle-state
/// deliveries of the enabled webhooks the vehicle is subscribed to. `written` are the
/// ingest's own signals: they override what is read back, so a payload carries the values of
/// the change that fired it even when a racing ingest has written since.
pub async fn change_deliveries(
    store: &dyn Store,
    vehicle: &Vehicle,
    written: &[SignalValue],
    applied: &IngestApplied,
    now: Millis,
) -> StoreResult<Vec<NewDelivery>> {
    if applied.changes.is_empty() && applied.raised.is_empty() && applied.resolved.is_empty() {
        return Ok(Vec::new());
    }
    let webhooks = store.subscribed_webhooks(&vehicle.id).await?;
    let mut deliveries = Vec::new();
    let mut signals = None;
    for webhook in webhooks
        .iter()
        .filter(|w| w.status == WebhookStatus::Enabled)
    {
        match webhook.kind {
            WebhookKind::EventBased => {
                deliveries.extend(diagnostics::on_change(webhook, vehicle, applied, now))
            }
            WebhookKind::VehicleState => {
                if signals.is_none() {
                    let mut read = store.signals(&vehicle.id).await?;
                    for value in written {
                        read.insert(value.code.clone(), value.clone());
                    }
                    signals = Some(read);
                }
                let after = signals.as_ref().expect("loaded just above");
                deliveries.extend(vehicle_state::on_change(
                    webhook, vehicle, applied, after, now,
                ));
            }
            WebhookKind::Scheduled | WebhookKind::Dynamic => {}
        }
    }
    Ok(deliveries)
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
