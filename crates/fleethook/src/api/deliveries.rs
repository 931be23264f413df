//! The delivery log: a webhook's deliveries, one delivery with every attempt, manual retry.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::Json;
use serde_json::{json, Value};

use super::error::{ApiError, ApiResult};
use super::extract::{number_param, paging, AppAuth};
use super::lookup;
use super::views;
use crate::model::{App, Attempt, Delivery, DeliveryPurpose, DeliveryStatus, WebhookStatus};
use crate::server::SharedState;
use crate::store::DeliveryFilter;

/// Deliveries the vehicle page lists unless told otherwise, and at most.
const VEHICLE_LOG_DEFAULT: i64 = 20;
const VEHICLE_LOG_MAX: i64 = 200;

/// `GET /api/v1/webhooks/{id}/deliveries?status=&vehicleId=`: newest first, paged.
pub async fn list_for_webhook(
    State(state): State<SharedState>,
    AppAuth(app): AppAuth,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    let page = paging(&query)?;
    let status =
        match query.get("status") {
            None => None,
            Some(s) => Some(DeliveryStatus::parse(s).ok_or_else(|| {
                ApiError::validation("status must be pending, succeeded or failed")
            })?),
        };
    let webhook = state
        .store
        .webhook(&app.id, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("webhook"))?;
    let filter = DeliveryFilter {
        status,
        vehicle_id: query.get("vehicleId").cloned(),
    };
    let (deliveries, total) = state
        .store
        .list_deliveries(&app.id, &webhook.id, &filter, page)
        .await?;
    let items = deliveries
        .iter()
        .map(|d| views::delivery(d, None))
        .collect();
    Ok(Json(views::page("deliveries", items, total, page.offset)))
}

/// `GET /api/v1/deliveries/{id}`: the delivery, its body and every attempt.
pub async fn get_one(
    State(state): State<SharedState>,
    AppAuth(app): AppAuth,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let delivery = state
        .store
        .delivery(&app.id, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("delivery"))?;
    Ok(Json(detail(&state, &app, &delivery).await?))
}

/// A delivery with its body and every attempt, each attempt with the request headers it
/// carried.
async fn detail(state: &SharedState, app: &App, delivery: &Delivery) -> ApiResult<Value> {
    let attempts = state.store.attempts(&delivery.id).await?;
    let mut view = views::delivery(delivery, Some(&attempts));
    if let Some(items) = view.get_mut("attempts").and_then(Value::as_array_mut) {
        for (item, attempt) in items.iter_mut().zip(&attempts) {
            item["requestHeaders"] = request_headers(app, delivery, attempt);
        }
    }
    Ok(view)
}

/// The headers an attempt was sent with, rebuilt from what the log keeps: the body stamped
/// with the attempt's delivery id and start time, signed again with the application's token,
/// is exactly what was signed. The Standard Webhooks timestamp and signature depend on the
/// real time of sending, which the log does not keep, so they are named but not shown.
fn request_headers(app: &App, delivery: &Delivery, attempt: &Attempt) -> Value {
    let sent = fleethook_wire::payload::stamp_attempt(
        &delivery.body,
        &attempt.wire_delivery_id,
        attempt.started_at,
    )
    .unwrap_or_else(|_| delivery.body.clone());
    json!({
        "Content-Type": "application/json",
        "User-Agent": crate::delivery::http::USER_AGENT,
        "SC-Signature": fleethook_wire::signing::sc_signature(&app.management_token, sent.as_bytes()),
        "webhook-id": delivery.event_id,
        "webhook-timestamp": "(the real time of sending, in Unix seconds)",
        "webhook-signature": "(v1,<base64 HMAC-SHA256> per active signing secret)",
    })
}

/// `GET /api/v1/vehicles/{id}/deliveries?limit=`: the latest deliveries that speak of the
/// vehicle, over every webhook, newest first.
pub async fn list_for_vehicle(
    State(state): State<SharedState>,
    AppAuth(app): AppAuth,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    let limit = number_param(&query, "limit", VEHICLE_LOG_DEFAULT, 1, VEHICLE_LOG_MAX)?;
    let vehicle = lookup::vehicle(&state, &app, &id).await?;
    let deliveries = state
        .store
        .vehicle_deliveries(&app.id, &vehicle.id, limit)
        .await?;
    let items: Vec<Value> = deliveries
        .iter()
        .map(|d| views::delivery(d, None))
        .collect();
    let count = items.len() as i64;
    Ok(Json(views::page("deliveries", items, count, 0)))
}

/// `POST /api/v1/deliveries/{id}/retry`: one attempt now, answered with the delivery as it
/// stands after it.
pub async fn retry(
    State(state): State<SharedState>,
    AppAuth(app): AppAuth,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let delivery = state
        .store
        .delivery(&app.id, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("delivery"))?;
    if delivery.purpose == DeliveryPurpose::Verify {
        return Err(ApiError::conflict(
            "NOT_RETRYABLE",
            "a verification challenge is not retried: verify the webhook again",
        ));
    }
    if delivery.status == DeliveryStatus::Pending {
        // Still on its retry road: one manual attempt would replace the remaining automatic
        // ones, so a pending delivery is left to the dispatcher.
        return Err(ApiError::conflict(
            "DELIVERY_PENDING",
            "the delivery is still pending and will be retried automatically; retry it by hand once it has failed",
        ));
    }
    let webhook = state
        .store
        .webhook(&app.id, &delivery.webhook_id)
        .await?
        .ok_or_else(|| ApiError::not_found("webhook"))?;
    if webhook.status != WebhookStatus::Enabled {
        return Err(ApiError::conflict(
            "WEBHOOK_NOT_ENABLED",
            format!(
                "webhook is {}: enable it before retrying its deliveries",
                webhook.status.as_str()
            ),
        ));
    }
    state
        .dispatcher
        .attempt_now(&app.id, &delivery.id, None)
        .await
        .map_err(|e| ApiError::internal("retrying the delivery", e))?;
    let delivery = state
        .store
        .delivery(&app.id, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("delivery"))?;
    Ok(Json(detail(&state, &app, &delivery).await?))
}
