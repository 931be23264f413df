//! The delivery log: a webhook's deliveries, one delivery with every attempt, manual retry.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::Json;
use serde_json::Value;

use super::error::{ApiError, ApiResult};
use super::extract::{paging, AppAuth};
use super::views;
use crate::model::{DeliveryPurpose, DeliveryStatus, WebhookStatus};
use crate::server::SharedState;
use crate::store::DeliveryFilter;

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
    let attempts = state.store.attempts(&delivery.id).await?;
    Ok(Json(views::delivery(&delivery, Some(&attempts))))
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
    let attempts = state.store.attempts(&delivery.id).await?;
    Ok(Json(views::delivery(&delivery, Some(&attempts))))
}
