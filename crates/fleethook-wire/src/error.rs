//! Smartcar's error body, `{"type","code","description","docURL","statusCode","requestId",
//! "resolution":{"type"},"suggestedUserMessage"?}`, and the facts about each error type.

use std::fmt;

use serde::{Deserialize, Serialize};

/// What the application should do about an error.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resolution {
    /// `RETRY_LATER`, `REAUTHENTICATE`, `CONTACT_SUPPORT`, `ACTION_REQUIRED`, or `null`.
    #[serde(rename = "type")]
    pub resolution_type: Option<String>,
}

/// A Smartcar error body. Field order is the key order on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SmartcarError {
    #[serde(rename = "type")]
    pub error_type: String,
    pub code: Option<String>,
    pub description: String,
    #[serde(rename = "docURL")]
    pub doc_url: String,
    #[serde(rename = "statusCode")]
    pub status_code: u16,
    #[serde(rename = "requestId")]
    pub request_id: String,
    pub resolution: Resolution,
    #[serde(
        rename = "suggestedUserMessage",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub suggested_user_message: Option<String>,
}

impl SmartcarError {
    /// An error with its `docURL` filled in and a `null` resolution.
    pub fn new(
        error_type: &str,
        code: Option<&str>,
        description: &str,
        status_code: u16,
        request_id: &str,
    ) -> Self {
        SmartcarError {
            error_type: error_type.to_string(),
            code: code.map(str::to_string),
            description: description.to_string(),
            doc_url: doc_url(error_type, code),
            status_code,
            request_id: request_id.to_string(),
            resolution: Resolution::default(),
            suggested_user_message: None,
        }
    }

    /// `COMPATIBILITY` / `VEHICLE_NOT_CAPABLE`, 501: the vehicle cannot supply what was asked.
    pub fn vehicle_not_capable(request_id: &str, description: &str) -> Self {
        SmartcarError::new(
            "COMPATIBILITY",
            Some("VEHICLE_NOT_CAPABLE"),
            description,
            501,
            request_id,
        )
    }
}

impl fmt::Display for SmartcarError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.code {
            Some(code) => write!(f, "{}:{}: {}", self.error_type, code, self.description),
            None => write!(f, "{}: {}", self.error_type, self.description),
        }
    }
}

impl std::error::Error for SmartcarError {}

/// Smartcar's error types: `(type, HTTP status, codes)`; a type whose code may be `null` lists
/// no code for it (reference/smartcar-errors.md).
pub const ERROR_TYPES: &[(&str, u16, &[&str])] = &[
    ("AUTHENTICATION", 401, &[]),
    (
        "BILLING",
        430,
        &[
            "INVALID_PLAN",
            "VEHICLE_LIMIT",
            "VEHICLE_REQUEST_LIMIT",
            "ACCOUNT_SUSPENDED",
        ],
    ),
    (
        "COMPATIBILITY",
        501,
        &[
            "MAKE_NOT_COMPATIBLE",
            "SMARTCAR_NOT_CAPABLE",
            "VEHICLE_NOT_CAPABLE",
        ],
    ),
    (
        "CONNECTED_SERVICES_ACCOUNT",
        400,
        &[
            "ACCOUNT_ISSUE",
            "AUTHENTICATION_FAILED",
            "NO_VEHICLES",
            "SUBSCRIPTION",
            "VEHICLE_MISSING",
            "PERMISSION",
            "VIRTUAL_KEY_REQUIRED",
        ],
    ),
    ("PERMISSION", 403, &[]),
    ("RATE_LIMIT", 429, &["SMARTCAR_API", "VEHICLE"]),
    ("RESOURCE_NOT_FOUND", 404, &["PATH", "VERSION"]),
    (
        "SERVER",
        500,
        &["INTERNAL", "MULTIPLE_RECORDS_FOUND", "RECORD_NOT_FOUND"],
    ),
    (
        "UPSTREAM",
        502,
        &[
            "INVALID_DATA",
            "KNOWN_ISSUE",
            "NO_RESPONSE",
            "RATE_LIMIT",
            "UNKNOWN_ISSUE",
        ],
    ),
    ("VALIDATION", 400, &["PARAMETER"]),
    (
        "VEHICLE_STATE",
        409,
        &[
            "ASLEEP",
            "CHARGING_IN_PROGRESS",
            "CHARGING_PLUG_NOT_CONNECTED",
            "DOOR_OPEN",
            "FULLY_CHARGED",
            "NOT_CHARGING",
            "CHARGE_FAULT",
            "HOOD_OPEN",
            "IGNITION_ON",
            "IN_MOTION",
            "REMOTE_ACCESS_DISABLED",
            "TRUNK_OPEN",
            "UNKNOWN",
            "UNREACHABLE",
            "VEHICLE_OFFLINE_FOR_SERVICE",
        ],
    ),
];

/// The HTTP status of an error type; 500 for a type Smartcar does not define.
pub fn status_for_type(t: &str) -> u16 {
    ERROR_TYPES
        .iter()
        .find(|(name, _, _)| *name == t)
        .map_or(500, |(_, status, _)| *status)
}

/// The codes Smartcar defines for an error type, or `None` for an unknown type.
pub fn codes_for_type(t: &str) -> Option<&'static [&'static str]> {
    ERROR_TYPES
        .iter()
        .find(|(name, _, _)| *name == t)
        .map(|(_, _, codes)| *codes)
}

/// The documentation address of an error, as Smartcar writes it:
/// `https://smartcar.com/docs/errors/api-errors/<type>-errors#<code>` in kebab case, without
/// the anchor when there is no code.
pub fn doc_url(error_type: &str, code: Option<&str>) -> String {
    let page = error_type.to_ascii_lowercase().replace('_', "-");
    let base = format!("https://smartcar.com/docs/errors/api-errors/{page}-errors");
    match code {
        Some(code) => format!("{base}#{}", code.to_ascii_lowercase().replace('_', "-")),
        None => base,
    }
}

/// What an application should usually do about an error, as Smartcar resolves it.
pub fn default_resolution(error_type: &str, code: Option<&str>) -> Option<&'static str> {
    match (error_type, code) {
        ("CONNECTED_SERVICES_ACCOUNT", Some("AUTHENTICATION_FAILED")) | ("AUTHENTICATION", _) => {
            Some("REAUTHENTICATE")
        }
        ("CONNECTED_SERVICES_ACCOUNT", Some("VIRTUAL_KEY_REQUIRED")) => Some("ACTION_REQUIRED"),
        ("RATE_LIMIT" | "UPSTREAM" | "VEHICLE_STATE" | "SERVER", _) => Some("RETRY_LATER"),
        ("BILLING", _) => Some("CONTACT_SUPPORT"),
        _ => None,
    }
}

/// A message an application may show its user about an error.
pub fn suggested_user_message(error_type: &str, code: Option<&str>) -> &'static str {
    match (error_type, code) {
        ("CONNECTED_SERVICES_ACCOUNT", Some("AUTHENTICATION_FAILED")) | ("AUTHENTICATION", _) => {
            "Your car got disconnected. Please re-connect your car to continue."
        }
        ("CONNECTED_SERVICES_ACCOUNT", Some("VIRTUAL_KEY_REQUIRED")) => {
            "Please add the virtual key to your car to continue."
        }
        ("CONNECTED_SERVICES_ACCOUNT", _) => {
            "Please check your car's connected services account and try again."
        }
        ("COMPATIBILITY", _) => "Your car does not support this feature.",
        ("VEHICLE_STATE", Some("ASLEEP" | "UNREACHABLE")) => {
            "Your car is unreachable right now. Make sure it has a mobile connection."
        }
        ("RATE_LIMIT" | "UPSTREAM" | "SERVER" | "VEHICLE_STATE", _) => {
            "Your car's data is temporarily unavailable. Please try again later."
        }
        _ => "Something went wrong with your car's connection. Please try again later.",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serializes_in_smartcars_key_order() {
        let mut err = SmartcarError::new(
            "CONNECTED_SERVICES_ACCOUNT",
            Some("AUTHENTICATION_FAILED"),
            "Smartcar was unable to authenticate with the user's connected services account.",
            400,
            "5dea93a1-3f79-4246-90c5-89610a20471b",
        );
        err.resolution.resolution_type = Some("REAUTHENTICATE".into());
        err.suggested_user_message = Some("Your car got disconnected.".into());
        assert_eq!(
            serde_json::to_string(&err).unwrap(),
            concat!(
                r#"{"type":"CONNECTED_SERVICES_ACCOUNT","code":"AUTHENTICATION_FAILED","#,
                r#""description":"Smartcar was unable to authenticate with the user's connected services account.","#,
                r#""docURL":"https://smartcar.com/docs/errors/api-errors/connected-services-account-errors#authentication-failed","#,
                r#""statusCode":400,"requestId":"5dea93a1-3f79-4246-90c5-89610a20471b","#,
                r#""resolution":{"type":"REAUTHENTICATE"},"suggestedUserMessage":"Your car got disconnected."}"#
            )
        );
    }

    #[test]
    fn absent_code_resolution_and_message_are_null_null_and_omitted() {
        let err = SmartcarError::new("AUTHENTICATION", None, "bad token", 401, "r1");
        assert_eq!(
            serde_json::to_string(&err).unwrap(),
            r#"{"type":"AUTHENTICATION","code":null,"description":"bad token","docURL":"https://smartcar.com/docs/errors/api-errors/authentication-errors","statusCode":401,"requestId":"r1","resolution":{"type":null}}"#
        );
        let back: SmartcarError =
            serde_json::from_str(&serde_json::to_string(&err).unwrap()).unwrap();
        assert_eq!(back, err);
    }

    #[test]
    fn vehicle_not_capable_is_compatibility_501() {
        let err = SmartcarError::vehicle_not_capable("r1", "no battery");
        assert_eq!(
            (
                err.error_type.as_str(),
                err.code.as_deref(),
                err.status_code
            ),
            ("COMPATIBILITY", Some("VEHICLE_NOT_CAPABLE"), 501)
        );
        assert_eq!(
            err.doc_url,
            "https://smartcar.com/docs/errors/api-errors/compatibility-errors#vehicle-not-capable"
        );
    }

    #[test]
    fn statuses_follow_the_reference_table() {
        let expected = [
            ("AUTHENTICATION", 401),
            ("BILLING", 430),
            ("COMPATIBILITY", 501),
            ("CONNECTED_SERVICES_ACCOUNT", 400),
            ("PERMISSION", 403),
            ("RATE_LIMIT", 429),
            ("RESOURCE_NOT_FOUND", 404),
            ("SERVER", 500),
            ("UPSTREAM", 502),
            ("VALIDATION", 400),
            ("VEHICLE_STATE", 409),
        ];
        for (t, status) in expected {
            assert_eq!(status_for_type(t), status, "{t}");
        }
        assert_eq!(status_for_type("MADE_UP"), 500);
        assert!(codes_for_type("VEHICLE_STATE").unwrap().contains(&"ASLEEP"));
        assert_eq!(codes_for_type("MADE_UP"), None);
    }

    #[test]
    fn resolutions_match_what_smartcar_asks_of_the_application() {
        assert_eq!(
            default_resolution("CONNECTED_SERVICES_ACCOUNT", Some("AUTHENTICATION_FAILED")),
            Some("REAUTHENTICATE")
        );
        assert_eq!(
            default_resolution("VEHICLE_STATE", Some("ASLEEP")),
            Some("RETRY_LATER")
        );
        assert_eq!(
            default_resolution("COMPATIBILITY", Some("VEHICLE_NOT_CAPABLE")),
            None
        );
    }
}
