//! An application's objects by id, or the 404 that hides whether another application has one.

use super::error::{ApiError, ApiResult};
use crate::model::{App, Vehicle, Webhook};
use crate::server::SharedState;

/// The application's vehicle `id`.
pub async fn vehicle(state: &SharedState, app: &App, id: &str) -> ApiResult<Vehicle> {
    state
        .store
        .vehicle(&app.id, id)
        .await?
        .ok_or_else(|| ApiError::not_found("vehicle"))
}

/// The application's webhook `id`.
pub async fn webhook(state: &SharedState, app: &App, id: &str) -> ApiResult<Webhook> {
    state
        .store
        .webhook(&app.id, id)
        .await?
        .ok_or_else(|| ApiError::not_found("webhook"))
}
