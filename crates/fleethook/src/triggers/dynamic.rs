//! Dynamic webhooks: `/battery`, `/charge` and `/location` every hour from the moment of
//! subscription, every 30 minutes while the EV is plugged in, hourly again once unplugged.
//!
//! Each dynamic subscription carries its own next due time in the store. Firing reads the due
//! rows with their vehicles' signals, renders vehicles due at the same moment into shared
//! bodies, and advances each row by the cadence its vehicle's current state asks for, in one
//! transaction fenced on the due times read.

use std::collections::BTreeMap;

use fleethook_wire::signal::SignalValue;
use fleethook_wire::units::UnitSystem;
use fleethook_wire::v2::VehicleInfo;

use super::batch::{pack, DueBatch};
use crate::clock::Millis;
use crate::model::WebhookStatus;
use crate::render::{v2_vehicle_data, DYNAMIC_PATHS};
use crate::store::{DynamicAdvance, Store, StoreResult};

/// The cadence of a vehicle that is not plugged in.
pub const HOURLY_MS: Millis = 60 * 60 * 1000;
/// The cadence while an EV is plugged in.
pub const PLUGGED_IN_MS: Millis = 30 * 60 * 1000;

/// Due rows read per round.
const ROUND: i64 = 1_000;

/// Whether the vehicle's charging cable is connected.
pub fn plugged_in(signals: &std::collections::HashMap<String, SignalValue>) -> bool {
    signals
        .get("charge-ischargingcableconnected")
        .and_then(|s| s.body.get("value"))
        .and_then(|v| v.as_bool())
        .unwrap_or(false)
}

/// The cadence a vehicle's current state asks for.
pub fn cadence(signals: &std::collections::HashMap<String, SignalValue>) -> Millis {
    if plugged_in(signals) {
        PLUGGED_IN_MS
    } else {
        HOURLY_MS
    }
}

/// Delivers every dynamic subscription due at `now`; returns the payloads enqueued.
pub async fn fire_due(store: &dyn Store, now: Millis) -> StoreResult<usize> {
    let mut enqueued = 0;
    loop {
        let due = store.due_dynamic(now, ROUND).await?;
        if due.is_empty() {
            return Ok(enqueued);
        }
        let mut advances = Vec::with_capacity(due.len());
        // Vehicles of one webhook due at one moment in one mode share bodies.
        let mut groups: BTreeMap<(String, Millis, &'static str), Vec<usize>> = BTreeMap::new();
        for (i, row) in due.iter().enumerate() {
            let step = cadence(&row.signals);
            // A process that was down delivers once now, then keeps the subscription's phase.
            let mut next = row.due_at + step;
            while next <= now {
                next += step;
            }
            advances.push(DynamicAdvance {
                webhook_id: row.webhook.id.clone(),
                vehicle_id: row.vehicle.id.clone(),
                due_at: row.due_at,
                next_due_at: next,
            });
            if row.webhook.status == WebhookStatus::Enabled {
                groups
                    .entry((
                        row.webhook.id.clone(),
                        row.due_at,
                        row.vehicle.mode.as_str(),
                    ))
                    .or_default()
                    .push(i);
            }
        }
        let mut deliveries = Vec::new();
        for ((_, _, mode), rows) in groups {
            let webhook = &due[rows[0]].webhook;
            let vehicles = rows
                .iter()
                .map(|&i| {
                    let v = &due[i].vehicle;
                    let info = VehicleInfo {
                        id: &v.id,
                        make: &v.make,
                        model: &v.model,
                        year: v.year,
                        vin: Some(&v.vin),
                    };
                    v2_vehicle_data(&info, &due[i].signals, &DYNAMIC_PATHS, UnitSystem::Metric)
                })
                .collect();
            deliveries.extend(pack(DueBatch {
                webhook,
                event_name: "dynamic",
                mode,
                vehicles,
                now,
            }));
        }
        store.dynamic_progress(&advances, &deliveries).await?;
        enqueued += deliveries.len();
    }
}
