//! The Smartcar-compatible vehicle API (SPEC section 7): what Smartcar's SDKs call, answered
//! from the same signals the webhooks render, so a webhook payload and a read agree.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use fleethook_wire::error::SmartcarError;
use fleethook_wire::signal::SignalValue;
use fleethook_wire::units::UnitSystem;
use fleethook_wire::v2::{render_endpoint, EndpointResponse, V2Path, VehicleInfo};
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::{ApiError, ApiResult};
use super::extract::{paging, AppAuth, JsonBody, VehicleAuth};
use crate::ids::new_id;
use crate::model::Vehicle;
use crate::server::SharedState;

/// The vehicle `id` if this token's user may read it; another user's or application's vehicle
/// is "not found", never "forbidden", so ids cannot be probed.
async fn accessible(state: &SharedState, auth: &VehicleAuth, id: &str) -> ApiResult<Vehicle> {
    match state.store.vehicle(&auth.0.app_id, id).await? {
        Some(vehicle) if auth.may_access(&vehicle) => Ok(vehicle),
        _ => Err(ApiError::not_found("vehicle")),
    }
}

fn units_from(headers: &HeaderMap) -> ApiResult<UnitSystem> {
    match headers.get("sc-unit-system") {
        None => Ok(UnitSystem::Metric),
        Some(value) => value
            .to_str()
            .ok()
            .and_then(|v| UnitSystem::parse(&v.to_ascii_lowercase()))
            .ok_or_else(|| {
                ApiError::validation("sc-unit-system header must be metric or imperial")
            }),
    }
}

fn info(vehicle: &Vehicle) -> VehicleInfo<'_> {
    VehicleInfo {
        id: &vehicle.id,
        make: &vehicle.make,
        model: &vehicle.model,
        year: vehicle.year,
        vin: Some(&vehicle.vin),
    }
}

/// A JSON answer with Smartcar's response headers.
fn with_headers(status: StatusCode, body: &Value, headers: &[(&str, String)]) -> Response {
    let mut response = (status, Json(body)).into_response();
    for (name, value) in headers {
        if let (Ok(name), Ok(value)) = (HeaderName::try_from(*name), HeaderValue::from_str(value)) {
            response.headers_mut().insert(name, value);
        }
    }
    response
}

/// `GET /v2.0/vehicles`: the ids of this user's vehicles.
pub async fn list_vehicles(
    State(state): State<SharedState>,
    auth: VehicleAuth,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    let page = paging(&query)?;
    let (vehicles, total) = state
        .store
        .list_vehicles(&auth.0.app_id, Some(&auth.0.user_id), page)
        .await?;
    let ids: Vec<&str> = vehicles.iter().map(|v| v.id.as_str()).collect();
    let body = json!({"vehicles": ids, "paging": {"count": total, "offset": page.offset}});
    Ok(with_headers(
        StatusCode::OK,
        &body,
        &[("sc-request-id", new_id())],
    ))
}

/// `GET /v2.0/vehicles/{id}`: `{id, make, model, year}`.
pub async fn attributes(
    State(state): State<SharedState>,
    auth: VehicleAuth,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let vehicle = accessible(&state, &auth, &id).await?;
    let body = json!({"id": vehicle.id, "make": vehicle.make, "model": vehicle.model, "year": vehicle.year});
    Ok(with_headers(
        StatusCode::OK,
        &body,
        &[("sc-request-id", new_id())],
    ))
}

fn endpoint_headers(
    response: &EndpointResponse,
    request_id: &str,
    units: UnitSystem,
) -> Vec<(&'static str, String)> {
    let mut headers = vec![("sc-request-id", request_id.to_string())];
    if response.code < 300 {
        headers.push(("sc-unit-system", units.as_str().to_string()));
        if let Some(Value::String(age)) = response.headers.get("sc-data-age") {
            headers.push(("sc-data-age", age.clone()));
        }
    }
    headers
}

/// `GET /v2.0/vehicles/{id}/battery` and the other v2.0 endpoint paths.
pub async fn endpoint(
    State(state): State<SharedState>,
    auth: VehicleAuth,
    Path((id, path)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let v2_path = V2Path::parse(&format!("/{}", path.trim_end_matches('/')))
        .ok_or_else(|| ApiError::no_such_path(&format!("/v2.0/vehicles/{id}/{path}")))?;
    let units = units_from(&headers)?;
    let vehicle = accessible(&state, &auth, &id).await?;
    let signals = state.store.signals(&vehicle.id).await?;
    let request_id = new_id();
    let response = render_endpoint(v2_path, &info(&vehicle), &signals, units, &request_id);
    let status = StatusCode::from_u16(response.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = endpoint_headers(&response, &request_id, units);
    Ok(with_headers(status, &response.body, &headers))
}

#[derive(Debug, Deserialize)]
pub struct BatchBody {
    requests: Vec<BatchRequest>,
}

#[derive(Debug, Deserialize)]
struct BatchRequest {
    path: String,
}

/// `POST /v2.0/vehicles/{id}/batch`: several endpoint reads in one request.
pub async fn batch(
    State(state): State<SharedState>,
    auth: VehicleAuth,
    Path(id): Path<String>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<BatchBody>,
) -> ApiResult<Response> {
    if body.requests.is_empty() || body.requests.len() > 50 {
        return Err(ApiError::validation("requests must hold 1 to 50 paths"));
    }
    let units = units_from(&headers)?;
    let vehicle = accessible(&state, &auth, &id).await?;
    let signals = state.store.signals(&vehicle.id).await?;
    let request_id = new_id();
    let responses: Vec<Value> = body
        .requests
        .iter()
        .map(|r| match V2Path::parse(&r.path) {
            Some(path) => {
                let response = render_endpoint(path, &info(&vehicle), &signals, units, &request_id);
                serde_json::to_value(&response).unwrap_or(Value::Null)
            }
            None => {
                let err = SmartcarError::new(
                    "RESOURCE_NOT_FOUND",
                    Some("PATH"),
                    &format!("no endpoint at {}", r.path),
                    404,
                    &request_id,
                );
                json!({"path": r.path, "code": 404, "body": err, "headers": {}})
            }
        })
        .collect();
    Ok(with_headers(
        StatusCode::OK,
        &json!({ "responses": responses }),
        &[
            ("sc-request-id", request_id),
            ("sc-unit-system", units.as_str().to_string()),
        ],
    ))
}

/// `POST /v2.0/vehicles/{id}/webhooks/{webhookId}`: subscribe, with the vehicle's token.
pub async fn subscribe(
    State(state): State<SharedState>,
    auth: VehicleAuth,
    Path((id, webhook_id)): Path<(String, String)>,
) -> ApiResult<Response> {
    let vehicle = accessible(&state, &auth, &id).await?;
    let webhook = state
        .store
        .webhook(&vehicle.app_id, &webhook_id)
        .await?
        .ok_or_else(|| ApiError::not_found("webhook"))?;
    super::subscriptions::subscribe_vehicle(&state, &webhook, &vehicle).await?;
    let body = json!({"webhookId": webhook.id, "vehicleId": vehicle.id});
    Ok(with_headers(
        StatusCode::OK,
        &body,
        &[("sc-request-id", new_id())],
    ))
}

/// `DELETE /v2.0/vehicles/{id}/webhooks/{webhookId}`: unsubscribe, with the management token.
pub async fn unsubscribe(
    State(state): State<SharedState>,
    AppAuth(app): AppAuth,
    Path((id, webhook_id)): Path<(String, String)>,
) -> ApiResult<Response> {
    let vehicle = state
        .store
        .vehicle(&app.id, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("vehicle"))?;
    let webhook = state
        .store
        .webhook(&app.id, &webhook_id)
        .await?
        .ok_or_else(|| ApiError::not_found("webhook"))?;
    state.store.unsubscribe(&webhook.id, &vehicle.id).await?;
    Ok(with_headers(
        StatusCode::OK,
        &json!({"status": "success"}),
        &[("sc-request-id", new_id())],
    ))
}

fn signal_link(vehicle_id: &str, code: &str) -> String {
    format!("/v3/vehicles/{vehicle_id}/signals/{code}")
}

/// `GET /v3/vehicles/{id}/signals`: every signal the vehicle has a value for.
pub async fn signals(
    State(state): State<SharedState>,
    auth: VehicleAuth,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let vehicle = accessible(&state, &auth, &id).await?;
    let mut values: Vec<SignalValue> = state
        .store
        .signals(&vehicle.id)
        .await?
        .into_values()
        .collect();
    values.sort_by(|a, b| a.code.cmp(&b.code));
    let data: Vec<Value> = values
        .iter()
        .map(|v| {
            fleethook_wire::payload::v3::signal_resource(v, &signal_link(&vehicle.id, &v.code))
        })
        .collect();
    Ok(Json(json!({ "data": data })))
}

/// `GET /v3/vehicles/{id}/signals/{code}`: one signal resource, not wrapped.
pub async fn signal(
    State(state): State<SharedState>,
    auth: VehicleAuth,
    Path((id, code)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let vehicle = accessible(&state, &auth, &id).await?;
    if fleethook_wire::catalog::lookup(&code).is_none() {
        return Err(ApiError::not_found(&format!("signal {code}")));
    }
    let signals = state.store.signals(&vehicle.id).await?;
    let value = signals.get(&code).ok_or_else(|| {
        ApiError::not_found(&format!("a value of signal {code} for this vehicle"))
    })?;
    Ok(Json(fleethook_wire::payload::v3::signal_resource(
        value,
        &signal_link(&vehicle.id, &code),
    )))
}
