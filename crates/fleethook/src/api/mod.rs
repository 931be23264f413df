//! The HTTP API: management (Bearer AMT), Smartcar-compatible vehicle API (Bearer vehicle
//! token), health, metrics, the OpenAPI document and the dashboard's pages. Handlers are thin:
//! they check input, call the store or the dispatcher, and render with `views`.

use axum::extract::DefaultBodyLimit;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;

use crate::server::SharedState;

pub mod catalog;
pub mod dashboard;
pub mod deliveries;
pub mod error;
pub mod extract;
pub mod lookup;
pub mod openapi;
pub mod ops;
pub mod routes;
pub mod smartcar;
pub mod stats;
pub mod subscriptions;
pub mod vehicles;
pub mod views;
pub mod webhooks;

use error::ApiError;
use extract::MAX_BODY_BYTES;

/// Every route of the API, built from the same table as the OpenAPI document.
pub fn router(state: SharedState) -> Router {
    let mut router = Router::new();
    for route in routes::ROUTES {
        router = router.route(route.path, (route.handler)());
    }
    router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

async fn not_found(uri: Uri) -> Response {
    ApiError::no_such_path(uri.path()).into_response()
}

async fn method_not_allowed() -> Response {
    let mut response = ApiError::method_not_allowed().into_response();
    *response.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
    response
}
