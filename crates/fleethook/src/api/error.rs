//! One error type for every endpoint, rendered in one place in Smartcar's error shape:
//! `{"type","code","description","docURL","statusCode","requestId","resolution":{"type"}}`.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use fleethook_wire::error::SmartcarError;

use crate::store::StoreError;

/// An error answer of the API.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub error_type: &'static str,
    pub code: Option<&'static str>,
    pub description: String,
}

impl ApiError {
    fn new(
        status: StatusCode,
        error_type: &'static str,
        code: Option<&'static str>,
        description: impl Into<String>,
    ) -> Self {
        ApiError {
            status,
            error_type,
            code,
            description: description.into(),
        }
    }

    /// 400 VALIDATION: bad input; the description names the field.
    pub fn validation(description: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "VALIDATION",
            Some("PARAMETER"),
            description,
        )
    }

    /// 401 AUTHENTICATION: a missing or wrong token.
    pub fn authentication(description: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "AUTHENTICATION",
            None,
            description,
        )
    }

    /// 404 for an object that does not exist or belongs to another application.
    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "RESOURCE_NOT_FOUND",
            Some("RECORD_NOT_FOUND"),
            format!("{what} not found"),
        )
    }

    /// 404 for a path the API does not have.
    pub fn no_such_path(path: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "RESOURCE_NOT_FOUND",
            Some("PATH"),
            format!("no endpoint at {path}"),
        )
    }

    /// 405: the path exists but not with this method.
    pub fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "RESOURCE_NOT_FOUND",
            Some("PATH"),
            "this endpoint does not accept this HTTP method",
        )
    }

    /// 409: the request is valid but the object is not in a state that allows it.
    pub fn conflict(code: &'static str, description: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "CONFLICT", Some(code), description)
    }

    /// 413: the body is larger than the API accepts.
    pub fn too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "VALIDATION",
            Some("PAYLOAD_TOO_LARGE"),
            format!("request body exceeds {limit} bytes"),
        )
    }

    /// 500: something broke on our side; the details go to the log, not the client.
    pub fn internal(context: &str, err: impl std::fmt::Display) -> Self {
        tracing::error!(%err, "{context}");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "SERVER",
            Some("INTERNAL"),
            format!("internal error while {context}"),
        )
    }

    /// The Smartcar-shaped body with a fresh request id.
    pub fn body(&self, request_id: &str) -> SmartcarError {
        let mut err = SmartcarError::new(
            self.error_type,
            self.code,
            &self.description,
            self.status.as_u16(),
            request_id,
        );
        err.resolution.resolution_type = match self.status {
            StatusCode::INTERNAL_SERVER_ERROR => Some("RETRY_LATER".into()),
            StatusCode::UNAUTHORIZED => Some("REAUTHENTICATE".into()),
            _ => None,
        };
        err
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Conflict(what) => ApiError::conflict("DUPLICATE", what),
            other => ApiError::internal("accessing the store", other),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let request_id = crate::ids::new_id();
        let body = serde_json::to_vec(&self.body(&request_id)).unwrap_or_default();
        let mut response = (self.status, body).into_response();
        let headers = response.headers_mut();
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        if let Ok(value) = HeaderValue::from_str(&request_id) {
            headers.insert("sc-request-id", value);
        }
        response
    }
}

/// What handlers return.
pub type ApiResult<T> = Result<T, ApiError>;
