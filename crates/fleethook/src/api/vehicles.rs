//! Management of vehicles, and the ingest API through which outside sources write signals.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use fleethook_wire::catalog;
use fleethook_wire::signal::SignalValue;
use rand::Rng;
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::{ApiError, ApiResult};
use super::extract::{paging, AppAuth, JsonBody};
use super::views;
use crate::ids::{new_id, new_token};
use crate::model::{Vehicle, VehicleErrorState, VehicleMode};
use crate::server::SharedState;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CreateVehicle {
    make: String,
    model: String,
    year: i32,
    vin: Option<String>,
    mode: Option<String>,
    simulate: Option<bool>,
    user_id: Option<String>,
}

fn check_text(field: &str, value: &str, max: usize) -> ApiResult<String> {
    let trimmed = value.trim();
    if trimmed.is_empty() || trimmed.chars().count() > max {
        return Err(ApiError::validation(format!(
            "{field} must be 1 to {max} characters"
        )));
    }
    Ok(trimmed.to_string())
}

/// VIN characters: digits and capitals without I, O and Q, which VINs never use.
fn is_vin_char(c: char) -> bool {
    c.is_ascii_digit() || (c.is_ascii_uppercase() && !matches!(c, 'I' | 'O' | 'Q'))
}

fn random_vin() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPRSTUVWXYZ0123456789";
    let mut rng = rand::thread_rng();
    (0..17)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect()
}

/// `POST /api/v1/vehicles`
pub async fn create(
    State(state): State<SharedState>,
    AppAuth(app): AppAuth,
    JsonBody(body): JsonBody<CreateVehicle>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let make = check_text("make", &body.make, 100)?;
    let model = check_text("model", &body.model, 100)?;
    if !(1900..=2100).contains(&body.year) {
        return Err(ApiError::validation("year must be from 1900 to 2100"));
    }
    let vin = match body.vin {
        Some(vin) => {
            let vin = vin.trim().to_ascii_uppercase();
            if vin.len() != 17 || !vin.chars().all(is_vin_char) {
                return Err(ApiError::validation(
                    "vin must be 17 characters of digits and capital letters other than I, O and Q",
                ));
            }
            vin
        }
        None => random_vin(),
    };
    let simulated = body.simulate.unwrap_or(false);
    let mode = match body.mode.as_deref() {
        None if simulated => VehicleMode::Simulated,
        None => VehicleMode::Live,
        Some(m) => VehicleMode::parse(m)
            .ok_or_else(|| ApiError::validation("mode must be \"live\" or \"simulated\""))?,
    };
    if simulated && mode == VehicleMode::Live {
        return Err(ApiError::validation(
            "mode must be \"simulated\" when simulate is true",
        ));
    }
    let user_id = match body.user_id {
        Some(user) => check_text("userId", &user, 100)?,
        None => new_id(),
    };
    let vehicle = Vehicle {
        id: new_id(),
        app_id: app.id.clone(),
        user_id,
        access_token: new_token("vat_"),
        make,
        model,
        year: body.year,
        vin,
        mode,
        simulated,
        created_at: state.clock.now_ms(),
    };
    state.store.create_vehicle(&vehicle).await?;
    Ok((StatusCode::CREATED, Json(views::vehicle(&vehicle, true))))
}

/// `GET /api/v1/vehicles`
pub async fn list(
    State(state): State<SharedState>,
    AppAuth(app): AppAuth,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    let page = paging(&query)?;
    let user = query.get("userId").map(String::as_str);
    let (vehicles, total) = state.store.list_vehicles(&app.id, user, page).await?;
    let items = vehicles.iter().map(|v| views::vehicle(v, false)).collect();
    Ok(Json(views::page("vehicles", items, total, page.offset)))
}

/// `GET /api/v1/vehicles/{id}`: the vehicle, its current signals and active errors.
pub async fn get_one(
    State(state): State<SharedState>,
    AppAuth(app): AppAuth,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let vehicle = state
        .store
        .vehicle(&app.id, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("vehicle"))?;
    let mut signals: Vec<SignalValue> = state
        .store
        .signals(&vehicle.id)
        .await?
        .into_values()
        .collect();
    signals.sort_by(|a, b| a.code.cmp(&b.code));
    let errors = state.store.vehicle_errors(&vehicle.id).await?;
    let mut view = views::vehicle(&vehicle, false);
    view["signals"] = signals
        .iter()
        .map(|s| {
            json!({"code": s.code, "body": s.body, "oemUpdatedAt": s.oem_updated_at, "retrievedAt": s.retrieved_at})
        })
        .collect();
    view["errors"] = serde_json::to_value(errors).unwrap_or(Value::Null);
    Ok(Json(view))
}

/// `DELETE /api/v1/vehicles/{id}`
pub async fn delete(
    State(state): State<SharedState>,
    AppAuth(app): AppAuth,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    if state.store.delete_vehicle(&app.id, &id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("vehicle"))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestBody {
    #[serde(default)]
    signals: Vec<IngestSignal>,
    errors: Option<Vec<IngestError>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct IngestSignal {
    code: String,
    body: Value,
    oem_updated_at: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct IngestError {
    #[serde(rename = "type")]
    error_type: String,
    code: String,
    description: Option<String>,
    #[serde(default)]
    signals: Vec<String>,
}

/// Error types a source may report (Smartcar's error types).
const ERROR_TYPES: &[&str] = &[
    "AUTHENTICATION",
    "BILLING",
    "COMPATIBILITY",
    "CONNECTED_SERVICES_ACCOUNT",
    "PERMISSION",
    "RATE_LIMIT",
    "RESOURCE_NOT_FOUND",
    "SERVER",
    "UPSTREAM",
    "VALIDATION",
    "VEHICLE_STATE",
];

/// An `oemUpdatedAt`: epoch milliseconds, or an ISO 8601 time.
fn parse_time(field: &str, value: &Value) -> ApiResult<i64> {
    let err = || {
        ApiError::validation(format!(
            "{field} must be epoch milliseconds or an ISO 8601 time"
        ))
    };
    match value {
        Value::Number(n) => n.as_i64().filter(|t| *t >= 0).ok_or_else(err),
        Value::String(s) => chrono::DateTime::parse_from_rfc3339(s)
            .map(|t| t.timestamp_millis())
            .map_err(|_| err()),
        _ => Err(err()),
    }
}

/// Checks a whole ingest request before anything is applied: all or nothing.
fn validate_ingest(
    body: IngestBody,
    now: i64,
) -> ApiResult<(Vec<SignalValue>, Option<Vec<VehicleErrorState>>)> {
    if body.signals.is_empty() && body.errors.is_none() {
        return Err(ApiError::validation(
            "signals must hold at least one signal (or give errors)",
        ));
    }
    let mut signals: Vec<SignalValue> = Vec::with_capacity(body.signals.len());
    for (i, signal) in body.signals.into_iter().enumerate() {
        let def = catalog::lookup(&signal.code).ok_or_else(|| {
            ApiError::validation(format!(
                "signals[{i}].code: unknown signal code {:?}",
                signal.code
            ))
        })?;
        def.validate_body(&signal.body)
            .map_err(|reason| ApiError::validation(format!("signals[{i}].{reason}")))?;
        if signals.iter().any(|s| s.code == signal.code) {
            return Err(ApiError::validation(format!(
                "signals[{i}].code: {} appears twice in one request",
                signal.code
            )));
        }
        let oem_updated_at = match &signal.oem_updated_at {
            None | Some(Value::Null) => None,
            Some(v) => Some(parse_time(&format!("signals[{i}].oemUpdatedAt"), v)?),
        };
        signals.push(SignalValue {
            code: signal.code,
            body: signal.body,
            oem_updated_at,
            retrieved_at: now,
        });
    }
    let errors = match body.errors {
        None => None,
        Some(list) => {
            let mut errors: Vec<VehicleErrorState> = Vec::with_capacity(list.len());
            for (i, e) in list.into_iter().enumerate() {
                if !ERROR_TYPES.contains(&e.error_type.as_str()) {
                    return Err(ApiError::validation(format!(
                        "errors[{i}].type must be one of {}",
                        ERROR_TYPES.join(", ")
                    )));
                }
                let code = check_text(&format!("errors[{i}].code"), &e.code, 100)?;
                for (j, s) in e.signals.iter().enumerate() {
                    if catalog::lookup(s).is_none() {
                        return Err(ApiError::validation(format!(
                            "errors[{i}].signals[{j}]: unknown signal code {s:?}"
                        )));
                    }
                }
                if errors
                    .iter()
                    .any(|x| x.error_type == e.error_type && x.code == code)
                {
                    return Err(ApiError::validation(format!(
                        "errors[{i}]: {}/{code} appears twice",
                        e.error_type
                    )));
                }
                errors.push(VehicleErrorState {
                    error_type: e.error_type,
                    code,
                    description: e.description,
                    signals: e.signals,
                });
            }
            Some(errors)
        }
    };
    Ok((signals, errors))
}

/// `POST /api/v1/vehicles/{id}/signals`: applies signals and the full set of active errors.
pub async fn ingest(
    State(state): State<SharedState>,
    AppAuth(app): AppAuth,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<IngestBody>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let vehicle = state
        .store
        .vehicle(&app.id, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("vehicle"))?;
    let now = state.clock.now_ms();
    let (signals, errors) = validate_ingest(body, now)?;
    let applied = crate::ingest::apply(&state, &vehicle, &signals, errors.as_deref(), now).await?;
    let changed: Vec<&str> = applied.changes.iter().map(|c| c.code.as_str()).collect();
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({
            "vehicleId": vehicle.id,
            "accepted": signals.len(),
            "changed": changed,
            "errorsRaised": applied.raised.len(),
            "errorsResolved": applied.resolved.len(),
        })),
    ))
}
