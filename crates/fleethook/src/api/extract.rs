//! Extractors that turn requests into checked inputs: JSON bodies whose errors name the field,
//! and bearer tokens that authenticate *and* scope every later lookup to one application.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::error::ApiError;
use crate::model::{App, Page, Vehicle};
use crate::server::SharedState;

/// The largest request body the API reads (SPEC: a body over 1 MB is refused).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// A JSON body; a malformed or mistyped one is a 400 whose description names the field.
pub struct JsonBody<T>(pub T);

impl<S, T> FromRequest<S> for JsonBody<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|_| ApiError::too_large(MAX_BODY_BYTES))?;
        parse_json(&bytes).map(JsonBody)
    }
}

/// Parses JSON, naming the failing field in the error ("year: invalid type: string …").
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // Every body the API takes is an object; saying so beats serde's view of `[1,2]` as a
    // struct written as a sequence.
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ApiError::validation("request body must be a JSON object"));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    match serde_path_to_error::deserialize(&mut de) {
        Ok(value) => {
            de.end().map_err(|e| {
                ApiError::validation(format!("request body is not valid JSON: {e}"))
            })?;
            Ok(value)
        }
        Err(err) => {
            let path = err.path().to_string();
            let inner = err.into_inner();
            let reason = if inner.is_syntax() || inner.is_eof() {
                format!("request body is not valid JSON: {inner}")
            } else if path == "." || path.is_empty() {
                format!("request body: {inner}")
            } else {
                format!("{path}: {inner}")
            };
            Err(ApiError::validation(strip_position(&reason)))
        }
    }
}

/// serde's "at line 1 column 7" is noise for one-line bodies; the field path says where.
fn strip_position(reason: &str) -> String {
    match reason.rfind(" at line ") {
        Some(i) if !reason.contains("not valid JSON") => reason[..i].to_string(),
        _ => reason.to_string(),
    }
}

/// A whole-number query parameter from `min` to `max`, `default` when absent; a 400 naming
/// the parameter otherwise.
pub fn number_param(
    query: &std::collections::HashMap<String, String>,
    key: &str,
    default: i64,
    min: i64,
    max: i64,
) -> Result<i64, ApiError> {
    match query.get(key) {
        None => Ok(default),
        Some(raw) => raw
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|n| (min..=max).contains(n))
            .ok_or_else(|| {
                ApiError::validation(format!("{key} must be a whole number from {min} to {max}"))
            }),
    }
}

/// Reads `limit` and `offset` from a query string: limit 1 to 1000 (default 50), offset ≥ 0.
pub fn paging(query: &std::collections::HashMap<String, String>) -> Result<Page, ApiError> {
    let number =
        |key: &str, default: i64, min: i64, max: i64| number_param(query, key, default, min, max);
    Ok(Page {
        limit: number("limit", 50, 1, 1000)?,
        offset: number("offset", 0, 0, i64::MAX)?,
    })
}

fn bearer(parts: &Parts) -> Result<&str, ApiError> {
    let header = parts
        .headers
        .get("authorization")
        .ok_or_else(|| ApiError::authentication("missing Authorization: Bearer <token> header"))?;
    let value = header
        .to_str()
        .map_err(|_| ApiError::authentication("Authorization header is not valid text"))?;
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ApiError::authentication("Authorization must be Bearer <token>"))?;
    Ok(token)
}

/// The application whose management token (AMT) the request carries.
pub struct AppAuth(pub App);

impl FromRequestParts<SharedState> for AppAuth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &SharedState,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer(parts)?;
        match state.store.app_by_token(token).await? {
            Some(app) => Ok(AppAuth(app)),
            None => Err(ApiError::authentication("invalid management token")),
        }
    }
}

/// The vehicle (and so the user) whose access token the request carries.
pub struct VehicleAuth(pub Vehicle);

impl VehicleAuth {
    /// Whether this token's user may read `vehicle`: same application, same user.
    pub fn may_access(&self, vehicle: &Vehicle) -> bool {
        self.0.app_id == vehicle.app_id && self.0.user_id == vehicle.user_id
    }
}

impl FromRequestParts<SharedState> for VehicleAuth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &SharedState,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer(parts)?;
        match state.store.vehicle_by_token(token).await? {
            Some(vehicle) => Ok(VehicleAuth(vehicle)),
            None => Err(ApiError::authentication("invalid vehicle access token")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Body {
        make: String,
        year: i32,
    }

    #[test]
    fn errors_name_the_field() {
        let err = parse_json::<Body>(br#"{"make":"Tesla","year":"2020"}"#).unwrap_err();
        assert!(
            err.description.starts_with("year: invalid type"),
            "{}",
            err.description
        );
        let err = parse_json::<Body>(br#"{"year":2020}"#).unwrap_err();
        assert!(
            err.description.contains("missing field `make`"),
            "{}",
            err.description
        );
        let err = parse_json::<Body>(br#"{"make":"#).unwrap_err();
        assert!(
            err.description.contains("not valid JSON"),
            "{}",
            err.description
        );
        let err = parse_json::<Body>(b"").unwrap_err();
        assert!(
            err.description.contains("JSON object"),
            "{}",
            err.description
        );
    }
}
