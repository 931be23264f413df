//! Column lists and row decoding for the Postgres store: one place that knows the order in
//! which each record's columns are selected.

use fleethook_wire::signal::SignalValue;
use sqlx::postgres::PgRow;
use sqlx::Row;

use crate::model::*;
use crate::store::codec::{from_json, parse_enum};
use crate::store::{StoreResult, VehicleSignals};

/// The columns of a delivery, read from `deliveries d`, in the order `delivery_at` decodes.
pub(super) const DELIVERY_COLS: &str =
    "d.id, d.app_id, d.webhook_id, d.event_id, d.purpose, d.target_uri, d.body, \
     d.event_type, d.vehicle_ids, d.status, d.attempt_count, d.next_attempt_at, d.last_error, \
     d.created_at, d.updated_at";
pub(super) const DELIVERY_COL_COUNT: usize = 15;

/// The columns of a webhook, read from `webhooks w`, in the order `webhook_at` decodes.
pub(super) const WEBHOOK_COLS: &str =
    "w.id, w.app_id, w.name, w.kind, w.callback_uri, w.error_callback_uri, w.config, \
     w.status, w.disabled_reason, w.signing_secret, w.previous_secret, \
     w.previous_secret_expires_at, w.max_payload_bytes, w.created_at, w.updated_at";
pub(super) const WEBHOOK_COL_COUNT: usize = 15;

/// The columns of a vehicle, read from `vehicles v`, in the order `vehicle_at` decodes.
pub(super) const VEHICLE_COLS: &str = "v.id, v.app_id, v.user_id, v.access_token, v.make, \
     v.model, v.year, v.vin, v.mode, v.simulated, v.created_at";
pub(super) const VEHICLE_COL_COUNT: usize = 11;

pub(super) const APP_COLS: &str = "id, name, management_token, created_at";

/// A delivery joined with its webhook and its application's token, as `claimed_from_row`
/// decodes it, from `d`, `w` and `a`.
pub(super) fn claimed_cols() -> String {
    format!("{DELIVERY_COLS}, {WEBHOOK_COLS}, a.management_token")
}

pub(super) fn app_from_row(row: &PgRow) -> StoreResult<App> {
    Ok(App {
        id: row.try_get(0)?,
        name: row.try_get(1)?,
        management_token: row.try_get(2)?,
        created_at: row.try_get(3)?,
    })
}

/// Decodes [`VEHICLE_COLS`] starting at column `at`.
pub(super) fn vehicle_at(row: &PgRow, at: usize) -> StoreResult<Vehicle> {
    let mode: String = row.try_get(at + 8)?;
    Ok(Vehicle {
        id: row.try_get(at)?,
        app_id: row.try_get(at + 1)?,
        user_id: row.try_get(at + 2)?,
        access_token: row.try_get(at + 3)?,
        make: row.try_get(at + 4)?,
        model: row.try_get(at + 5)?,
        year: row.try_get(at + 6)?,
        vin: row.try_get(at + 7)?,
        mode: parse_enum(&mode, VehicleMode::parse, "vehicle mode")?,
        simulated: row.try_get(at + 9)?,
        created_at: row.try_get(at + 10)?,
    })
}

/// Decodes [`WEBHOOK_COLS`] starting at column `at`.
pub(super) fn webhook_at(row: &PgRow, at: usize) -> StoreResult<Webhook> {
    let kind: String = row.try_get(at + 3)?;
    let config: String = row.try_get(at + 6)?;
    let status: String = row.try_get(at + 7)?;
    Ok(Webhook {
        id: row.try_get(at)?,
        app_id: row.try_get(at + 1)?,
        name: row.try_get(at + 2)?,
        kind: parse_enum(&kind, WebhookKind::parse, "webhook kind")?,
        callback_uri: row.try_get(at + 4)?,
        error_callback_uri: row.try_get(at + 5)?,
        config: from_json(&config, "webhook config")?,
        status: parse_enum(&status, WebhookStatus::parse, "webhook status")?,
        disabled_reason: row.try_get(at + 8)?,
        signing_secret: row.try_get(at + 9)?,
        previous_secret: row.try_get(at + 10)?,
        previous_secret_expires_at: row.try_get(at + 11)?,
        max_payload_bytes: row.try_get(at + 12)?,
        created_at: row.try_get(at + 13)?,
        updated_at: row.try_get(at + 14)?,
    })
}

/// Decodes [`DELIVERY_COLS`] starting at column `at`.
pub(super) fn delivery_at(row: &PgRow, at: usize) -> StoreResult<Delivery> {
    let purpose: String = row.try_get(at + 4)?;
    let status: String = row.try_get(at + 9)?;
    Ok(Delivery {
        id: row.try_get(at)?,
        app_id: row.try_get(at + 1)?,
        webhook_id: row.try_get(at + 2)?,
        event_id: row.try_get(at + 3)?,
        purpose: parse_enum(&purpose, DeliveryPurpose::parse, "delivery purpose")?,
        target_uri: row.try_get(at + 5)?,
        body: row.try_get(at + 6)?,
        event_type: row.try_get(at + 7)?,
        vehicle_ids: row.try_get(at + 8)?,
        status: parse_enum(&status, DeliveryStatus::parse, "delivery status")?,
        attempt_count: row.try_get(at + 10)?,
        next_attempt_at: row.try_get(at + 11)?,
        last_error: row.try_get(at + 12)?,
        created_at: row.try_get(at + 13)?,
        updated_at: row.try_get(at + 14)?,
    })
}

/// Decodes a row of [`claimed_cols`].
pub(super) fn claimed_from_row(row: &PgRow) -> StoreResult<ClaimedDelivery> {
    Ok(ClaimedDelivery {
        delivery: delivery_at(row, 0)?,
        webhook: std::sync::Arc::new(webhook_at(row, DELIVERY_COL_COUNT)?),
        management_token: row.try_get(DELIVERY_COL_COUNT + WEBHOOK_COL_COUNT)?,
    })
}

/// Decodes `error_type, code, description, signals`.
pub(super) fn error_from_row(row: &PgRow) -> StoreResult<VehicleErrorState> {
    Ok(VehicleErrorState {
        error_type: row.try_get(0)?,
        code: row.try_get(1)?,
        description: row.try_get(2)?,
        signals: row.try_get(3)?,
    })
}

/// Decodes `code, body, oem_updated_at, retrieved_at` starting at column `at`.
pub(super) fn signal_at(row: &PgRow, at: usize) -> StoreResult<SignalValue> {
    let body: String = row.try_get(at + 1)?;
    Ok(SignalValue {
        code: row.try_get(at)?,
        body: from_json(&body, "signal body")?,
        oem_updated_at: row.try_get(at + 2)?,
        retrieved_at: row.try_get(at + 3)?,
    })
}

pub(super) fn attempt_from_row(row: &PgRow) -> StoreResult<Attempt> {
    Ok(Attempt {
        delivery_id: row.try_get(0)?,
        number: row.try_get(1)?,
        wire_delivery_id: row.try_get(2)?,
        started_at: row.try_get(3)?,
        status_code: row.try_get(4)?,
        duration_ms: row.try_get(5)?,
        error: row.try_get(6)?,
        response_body: row.try_get(7)?,
    })
}

/// Pairs vehicles with their signals (rows of `vehicle_id, code, body, oem_updated_at,
/// retrieved_at`), keeping the vehicles' order.
pub(super) fn attach_signals(
    vehicles: Vec<Vehicle>,
    signal_rows: &[PgRow],
) -> StoreResult<Vec<VehicleSignals>> {
    let mut by_vehicle: std::collections::HashMap<
        String,
        std::collections::HashMap<String, SignalValue>,
    > = std::collections::HashMap::new();
    for row in signal_rows {
        let vehicle_id: String = row.try_get(0)?;
        let value = signal_at(row, 1)?;
        by_vehicle
            .entry(vehicle_id)
            .or_default()
            .insert(value.code.clone(), value);
    }
    Ok(vehicles
        .into_iter()
        .map(|vehicle| VehicleSignals {
            signals: by_vehicle.remove(&vehicle.id).unwrap_or_default(),
            vehicle,
        })
        .collect())
}
