//! Packs the vehicles due at one moment into as few v2.0 bodies as `maxPayloadBytes` allows.

use fleethook_wire::payload::v2::{self, V2VehicleData};

use crate::clock::Millis;
use crate::ids::new_id;
use crate::model::{DeliveryPurpose, NewDelivery, Webhook};

/// Vehicles of one webhook due at one moment, in one payload mode (`live`, `simulated`).
pub struct DueBatch<'a> {
    pub webhook: &'a Webhook,
    /// `scheduled` or `dynamic`.
    pub event_name: &'a str,
    pub mode: &'a str,
    pub vehicles: Vec<V2VehicleData>,
    pub now: Millis,
}

/// Splits the batch into bodies of at most `webhook.max_payload_bytes` each, in vehicle order.
/// A single vehicle larger than the limit still goes out, alone: it cannot be split, and
/// dropping it would lose data the receiver asked for.
pub fn pack(mut batch: DueBatch<'_>) -> Vec<NewDelivery> {
    let limit = batch.webhook.max_payload_bytes.max(0) as usize;
    let overhead = v2::vehicles_body(&batch.webhook.id, batch.event_name, batch.mode, &[]).len();
    let mut deliveries = Vec::new();
    let mut chunk: Vec<V2VehicleData> = Vec::new();
    let mut size = overhead;
    for vehicle in std::mem::take(&mut batch.vehicles) {
        let item = serde_json::to_string(&vehicle)
            .map(|s| s.len())
            .unwrap_or(0);
        let separator = usize::from(!chunk.is_empty());
        if !chunk.is_empty() && size + separator + item > limit {
            deliveries.push(delivery(&batch, std::mem::take(&mut chunk)));
            size = overhead;
        }
        size += usize::from(!chunk.is_empty()) + item;
        chunk.push(vehicle);
    }
    if !chunk.is_empty() {
        deliveries.push(delivery(&batch, chunk));
    }
    deliveries
}

fn delivery(batch: &DueBatch<'_>, vehicles: Vec<V2VehicleData>) -> NewDelivery {
    let body = v2::vehicles_body(&batch.webhook.id, batch.event_name, batch.mode, &vehicles);
    NewDelivery {
        id: new_id(),
        app_id: batch.webhook.app_id.clone(),
        webhook_id: batch.webhook.id.clone(),
        event_id: new_id(),
        purpose: DeliveryPurpose::Event,
        target_uri: batch.webhook.callback_uri.clone(),
        body,
        event_type: batch.event_name.to_string(),
        vehicle_ids: vehicles.into_iter().map(|v| v.vehicle_id).collect(),
        next_attempt_at: Some(batch.now),
        created_at: batch.now,
    }
}
