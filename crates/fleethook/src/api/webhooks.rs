//! Management of webhooks: create, change, verify by challenge, test, enable, disable, rotate
//! the signing secret, and list subscriptions.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use fleethook_wire::signing::{hash_challenge, standard};
use serde_json::{json, Map, Value};

use super::error::{ApiError, ApiResult};
use super::extract::{paging, AppAuth, JsonBody};
use super::views;
use crate::delivery::http::validate_uri_field;
use crate::ids::new_id;
use crate::kinds::{kind_fields, KindConfig};
use crate::model::{App, DeliveryPurpose, NewDelivery, Webhook, WebhookKind, WebhookStatus};
use crate::render;
use crate::server::SharedState;

/// Fields every kind has.
const COMMON_FIELDS: &[&str] = &["name", "type", "callbackUri", "maxPayloadBytes"];
/// Smartcar's default limit for one webhook body.
pub const DEFAULT_MAX_PAYLOAD_BYTES: i64 = 50_000;
/// How long a rotated-out secret keeps signing beside the new one.
const ROTATION_GRACE_MS: i64 = 24 * 60 * 60 * 1000;

fn object(body: Value) -> ApiResult<Map<String, Value>> {
    match body {
        Value::Object(map) => Ok(map),
        _ => Err(ApiError::validation("request body must be a JSON object")),
    }
}

fn text_field(body: &Map<String, Value>, field: &str, max: usize) -> ApiResult<Option<String>> {
    match body.get(field) {
        None => Ok(None),
        Some(Value::String(s)) if !s.trim().is_empty() && s.chars().count() <= max => {
            Ok(Some(s.trim().to_string()))
        }
        Some(_) => Err(ApiError::validation(format!(
            "{field} must be a string of 1 to {max} characters"
        ))),
    }
}

fn uri_field(state: &SharedState, field: &str, value: &Value) -> ApiResult<String> {
    let uri = value
        .as_str()
        .ok_or_else(|| ApiError::validation(format!("{field} must be a URL string")))?;
    validate_uri_field(field, uri, state.allow_private)
        .map(|url| url.to_string())
        .map_err(ApiError::validation)
}

fn max_payload_field(value: &Value) -> ApiResult<i64> {
    value
        .as_i64()
        .filter(|n| (4_096..=10_000_000).contains(n))
        .ok_or_else(|| {
            ApiError::validation("maxPayloadBytes must be a whole number from 4096 to 10000000")
        })
}

/// Refuses fields that the kind does not have, by name.
fn check_known_fields(kind: WebhookKind, body: &Map<String, Value>) -> ApiResult<()> {
    let own = kind_fields(kind);
    for key in body.keys() {
        if !COMMON_FIELDS.contains(&key.as_str()) && !own.contains(&key.as_str()) {
            return Err(ApiError::validation(format!(
                "{key} is not a field of {} webhooks",
                kind.as_str()
            )));
        }
    }
    Ok(())
}

/// The kind's fields of a request body, without errorCallbackUri (kept on the webhook itself).
fn kind_part(kind: WebhookKind, body: &Map<String, Value>) -> Map<String, Value> {
    body.iter()
        .filter(|(k, _)| {
            kind_fields(kind).contains(&k.as_str()) && k.as_str() != "errorCallbackUri"
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

async fn find(state: &SharedState, app: &App, id: &str) -> ApiResult<Webhook> {
    state
        .store
        .webhook(&app.id, id)
        .await?
        .ok_or_else(|| ApiError::not_found("webhook"))
}

/// `POST /api/v1/webhooks`
pub async fn create(
    State(state): State<SharedState>,
    AppAuth(app): AppAuth,
    JsonBody(body): JsonBody<Value>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let body = object(body)?;
    let kind = match body.get("type") {
        Some(Value::String(t)) => WebhookKind::parse(t),
        _ => None,
    }
    .ok_or_else(|| {
        ApiError::validation("type must be one of scheduled, dynamic, eventBased, vehicleState")
    })?;
    check_known_fields(kind, &body)?;
    let name =
        text_field(&body, "name", 200)?.ok_or_else(|| ApiError::validation("name is required"))?;
    let callback_uri = uri_field(
        &state,
        "callbackUri",
        body.get("callbackUri")
            .ok_or_else(|| ApiError::validation("callbackUri is required"))?,
    )?;
    let error_callback_uri = match body.get("errorCallbackUri") {
        None | Some(Value::Null) => None,
        Some(v) => Some(uri_field(&state, "errorCallbackUri", v)?),
    };
    let max_payload_bytes = match body.get("maxPayloadBytes") {
        None | Some(Value::Null) => DEFAULT_MAX_PAYLOAD_BYTES,
        Some(v) => max_payload_field(v)?,
    };
    let config = KindConfig::parse(kind, &kind_part(kind, &body)).map_err(ApiError::validation)?;
    let now = state.clock.now_ms();
    let webhook = Webhook {
        id: new_id(),
        app_id: app.id.clone(),
        name,
        kind,
        callback_uri,
        error_callback_uri,
        config: config.to_json(),
        status: WebhookStatus::Unverified,
        disabled_reason: None,
        signing_secret: standard::generate_secret(),
        previous_secret: None,
        previous_secret_expires_at: None,
        max_payload_bytes,
        created_at: now,
        updated_at: now,
    };
    state.store.create_webhook(&webhook).await?;
    crate::triggers::on_webhook_saved(state.store.as_ref(), &webhook, now).await?;
    state.triggers.wake();
    Ok((StatusCode::CREATED, Json(views::webhook(&webhook, true))))
}

/// `GET /api/v1/webhooks`
pub async fn list(
    State(state): State<SharedState>,
    AppAuth(app): AppAuth,
) -> ApiResult<Json<Value>> {
    let webhooks = state.store.list_webhooks(&app.id).await?;
    let items: Vec<Value> = webhooks.iter().map(|w| views::webhook(w, false)).collect();
    let total = items.len() as i64;
    Ok(Json(views::page("webhooks", items, total, 0)))
}

/// `GET /api/v1/webhooks/{id}`
pub async fn get_one(
    State(state): State<SharedState>,
    AppAuth(app): AppAuth,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let webhook = find(&state, &app, &id).await?;
    Ok(Json(views::webhook(&webhook, true)))
}

/// `PATCH /api/v1/webhooks/{id}`: changes the given fields; a new callbackUri needs a new
/// verification.
pub async fn update(
    State(state): State<SharedState>,
    AppAuth(app): AppAuth,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> ApiResult<Json<Value>> {
    let body = object(body)?;
    let mut webhook = find(&state, &app, &id).await?;
    check_known_fields(webhook.kind, &body)?;
    if let Some(t) = body.get("type") {
        if t.as_str() != Some(webhook.kind.as_str()) {
            return Err(ApiError::validation(
                "type cannot change: create a new webhook instead",
            ));
        }
    }
    if let Some(name) = text_field(&body, "name", 200)? {
        webhook.name = name;
    }
    if let Some(v) = body.get("callbackUri") {
        let uri = uri_field(&state, "callbackUri", v)?;
        if uri != webhook.callback_uri {
            webhook.callback_uri = uri;
            webhook.status = WebhookStatus::Unverified;
            webhook.disabled_reason = None;
        }
    }
    match body.get("errorCallbackUri") {
        None => {}
        Some(Value::Null) => webhook.error_callback_uri = None,
        Some(v) => webhook.error_callback_uri = Some(uri_field(&state, "errorCallbackUri", v)?),
    }
    if let Some(v) = body.get("maxPayloadBytes") {
        webhook.max_payload_bytes = max_payload_field(v)?;
    }
    let changes = kind_part(webhook.kind, &body);
    let config_changed = !changes.is_empty();
    if config_changed {
        let mut merged = webhook.config.as_object().cloned().unwrap_or_default();
        merged.extend(changes);
        webhook.config = KindConfig::parse(webhook.kind, &merged)
            .map_err(ApiError::validation)?
            .to_json();
    }
    webhook.updated_at = state.clock.now_ms();
    state.store.update_webhook(&webhook).await?;
    if config_changed {
        crate::triggers::on_webhook_saved(state.store.as_ref(), &webhook, webhook.updated_at)
            .await?;
        state.triggers.wake();
    }
    Ok(Json(views::webhook(&webhook, true)))
}

/// `DELETE /api/v1/webhooks/{id}`
pub async fn delete(
    State(state): State<SharedState>,
    AppAuth(app): AppAuth,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    if state.store.delete_webhook(&app.id, &id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("webhook"))
    }
}

/// `POST /api/v1/webhooks/{id}/verify`: sends the challenge now, through the outbox and the
/// dispatcher like any payload, and answers with what the callback said.
pub async fn verify(
    State(state): State<SharedState>,
    AppAuth(app): AppAuth,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let mut webhook = find(&state, &app, &id).await?;
    let challenge = crate::ids::new_token("");
    let expected = hash_challenge(&app.management_token, &challenge);
    let now = state.clock.now_ms();
    let event_id = new_id();
    let body = render::verify_body(&webhook, &event_id, &challenge, now);
    let delivery = NewDelivery {
        id: new_id(),
        app_id: app.id.clone(),
        webhook_id: webhook.id.clone(),
        event_id,
        purpose: DeliveryPurpose::Verify,
        target_uri: webhook.callback_uri.clone(),
        body,
        event_type: "VERIFY".into(),
        vehicle_ids: Vec::new(),
        next_attempt_at: None,
        created_at: now,
    };
    state
        .store
        .enqueue_many(std::slice::from_ref(&delivery))
        .await?;
    let report = state
        .dispatcher
        .attempt_now(&app.id, &delivery.id, Some(&expected))
        .await
        .map_err(|e| ApiError::internal("sending the challenge", e))?;
    if report.outcome == crate::model::Outcome::Succeeded {
        if webhook.status == WebhookStatus::Unverified {
            webhook.status = WebhookStatus::Enabled;
            webhook.disabled_reason = None;
            webhook.updated_at = state.clock.now_ms();
            state.store.update_webhook(&webhook).await?;
            became_enabled(&state, &webhook).await?;
        }
        // What was sent and answered, as on failure: the dashboard shows both the same way.
        return Ok((
            StatusCode::OK,
            Json(json!({
                "verified": true,
                "deliveryId": delivery.id,
                "challenge": challenge,
                "expected": expected,
                "received": report.response_body,
                "statusCode": report.attempt.status_code,
            })),
        ));
    }
    Ok((
        StatusCode::UNPROCESSABLE_ENTITY,
        Json(json!({
            "verified": false,
            "reason": report.attempt.error.clone().unwrap_or_else(|| "the callback did not answer the challenge".into()),
            "challenge": challenge,
            "expected": expected,
            "received": report.response_body,
            "statusCode": report.attempt.status_code,
            "deliveryId": delivery.id,
        })),
    ))
}

/// `POST /api/v1/webhooks/{id}/test`: one test payload of the webhook's kind, on the same road
/// as any other payload.
pub async fn test(
    State(state): State<SharedState>,
    AppAuth(app): AppAuth,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let webhook = find(&state, &app, &id).await?;
    if webhook.status != WebhookStatus::Enabled {
        return Err(ApiError::conflict(
            "WEBHOOK_NOT_ENABLED",
            format!(
                "webhook is {}: only enabled webhooks receive payloads (verify it first)",
                webhook.status.as_str()
            ),
        ));
    }
    let now = state.clock.now_ms();
    let delivery = render::test_delivery(&webhook, now)
        .map_err(|e| ApiError::internal("rendering a test payload", e))?;
    state
        .store
        .enqueue_many(std::slice::from_ref(&delivery))
        .await?;
    state.dispatcher.wake();
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"deliveryId": delivery.id})),
    ))
}

/// `POST /api/v1/webhooks/{id}/enable`
pub async fn enable(
    State(state): State<SharedState>,
    AppAuth(app): AppAuth,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let mut webhook = find(&state, &app, &id).await?;
    if webhook.status == WebhookStatus::Unverified {
        return Err(ApiError::conflict(
            "WEBHOOK_NOT_VERIFIED",
            "webhook is unverified: verify it (POST …/verify) to enable it",
        ));
    }
    if webhook.status != WebhookStatus::Enabled {
        webhook.status = WebhookStatus::Enabled;
        webhook.disabled_reason = None;
        webhook.updated_at = state.clock.now_ms();
        state.store.update_webhook(&webhook).await?;
        became_enabled(&state, &webhook).await?;
    }
    Ok(Json(views::webhook(&webhook, false)))
}

/// What a webhook that just became enabled sets off (vehicleState: first deliveries again).
async fn became_enabled(state: &SharedState, webhook: &Webhook) -> ApiResult<()> {
    if crate::triggers::on_enabled(state.store.as_ref(), webhook, webhook.updated_at).await? > 0 {
        state.dispatcher.wake();
    }
    Ok(())
}

/// `POST /api/v1/webhooks/{id}/disable`
pub async fn disable(
    State(state): State<SharedState>,
    AppAuth(app): AppAuth,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let mut webhook = find(&state, &app, &id).await?;
    if webhook.status != WebhookStatus::Disabled {
        webhook.status = WebhookStatus::Disabled;
        webhook.disabled_reason = Some("disabled by hand".into());
        webhook.updated_at = state.clock.now_ms();
        state.store.update_webhook(&webhook).await?;
    }
    Ok(Json(views::webhook(&webhook, false)))
}

/// `POST /api/v1/webhooks/{id}/rotate-secret`: a new secret; the old one signs beside it for
/// 24 hours so receivers can switch without losing a delivery.
pub async fn rotate_secret(
    State(state): State<SharedState>,
    AppAuth(app): AppAuth,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let mut webhook = find(&state, &app, &id).await?;
    let now = state.clock.now_ms();
    let old = std::mem::replace(&mut webhook.signing_secret, standard::generate_secret());
    webhook.previous_secret = Some(old);
    webhook.previous_secret_expires_at = Some(now + ROTATION_GRACE_MS);
    webhook.updated_at = now;
    state.store.update_webhook(&webhook).await?;
    Ok(Json(json!({
        "signingSecret": webhook.signing_secret,
        "previousSecretExpiresAt": fleethook_wire::time::iso_millis(now + ROTATION_GRACE_MS),
    })))
}

/// `GET /api/v1/webhooks/{id}/subscriptions`
pub async fn subscriptions(
    State(state): State<SharedState>,
    AppAuth(app): AppAuth,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    let page = paging(&query)?;
    let webhook = find(&state, &app, &id).await?;
    let (subs, total) = state.store.subscriptions(&webhook.id, page).await?;
    let items = subs.iter().map(views::subscription).collect();
    Ok(Json(views::page("vehicles", items, total, page.offset)))
}
