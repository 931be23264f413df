//! Subscriptions made with the management token: the dashboard subscribes a vehicle to a
//! webhook without holding the vehicle's access token, and shows which webhooks a vehicle
//! feeds. Unsubscribing with the management token is Smartcar's own
//! `DELETE /v2.0/vehicles/{id}/webhooks/{webhookId}`.

use axum::extract::{Path, State};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::{ApiError, ApiResult};
use super::extract::{AppAuth, JsonBody};
use super::lookup;
use super::views;
use crate::model::{Vehicle, Webhook};
use crate::server::SharedState;

/// Subscribes `vehicle` to `webhook` and sets off what a subscription starts (a first
/// delivery, a dynamic cadence); `true` when it was not subscribed before. Both APIs that
/// subscribe go through here.
pub async fn subscribe_vehicle(
    state: &SharedState,
    webhook: &Webhook,
    vehicle: &Vehicle,
) -> ApiResult<bool> {
    let now = state.clock.now_ms();
    let new = state.store.subscribe(&webhook.id, &vehicle.id, now).await?;
    if crate::triggers::on_subscribe(state.store.as_ref(), webhook, vehicle, new, now).await? > 0 {
        state.dispatcher.wake();
    }
    state.triggers.wake();
    Ok(new)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SubscribeBody {
    vehicle_id: String,
}

/// `POST /api/v1/webhooks/{id}/subscriptions` with `{"vehicleId"}`.
pub async fn create(
    State(state): State<SharedState>,
    AppAuth(app): AppAuth,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<SubscribeBody>,
) -> ApiResult<Json<Value>> {
    let webhook = lookup::webhook(&state, &app, &id).await?;
    let vehicle_id = body.vehicle_id.trim();
    if vehicle_id.is_empty() {
        return Err(ApiError::validation("vehicleId must not be empty"));
    }
    let vehicle = lookup::vehicle(&state, &app, vehicle_id).await?;
    let new = subscribe_vehicle(&state, &webhook, &vehicle).await?;
    Ok(Json(json!({
        "webhookId": webhook.id,
        "vehicleId": vehicle.id,
        "created": new,
    })))
}

/// `GET /api/v1/vehicles/{id}/webhooks`: the webhooks the vehicle is subscribed to.
pub async fn for_vehicle(
    State(state): State<SharedState>,
    AppAuth(app): AppAuth,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let vehicle = lookup::vehicle(&state, &app, &id).await?;
    let webhooks = state.store.subscribed_webhooks(&vehicle.id).await?;
    let items: Vec<Value> = webhooks
        .iter()
        .filter(|w| w.app_id == app.id)
        .map(|w| views::webhook(w, false))
        .collect();
    let total = items.len() as i64;
    Ok(Json(views::page("webhooks", items, total, 0)))
}
