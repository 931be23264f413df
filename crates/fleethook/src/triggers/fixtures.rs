//! Records for the renderers' unit tests: one enabled webhook and one vehicle, so each test
//! states only what it is about.

use serde_json::Value;

use crate::model::{Vehicle, VehicleMode, Webhook, WebhookKind, WebhookStatus};

/// An enabled webhook `wh_1` of `kind` with these kind fields.
pub fn webhook(kind: WebhookKind, name: &str, callback_uri: &str, config: Value) -> Webhook {
    Webhook {
        id: "wh_1".into(),
        app_id: "app_1".into(),
        name: name.into(),
        kind,
        callback_uri: callback_uri.into(),
        error_callback_uri: None,
        config,
        status: WebhookStatus::Enabled,
        disabled_reason: None,
        signing_secret: "secret".into(),
        previous_secret: None,
        previous_secret_expires_at: None,
        max_payload_bytes: 50_000,
        created_at: 0,
        updated_at: 0,
    }
}

/// Vehicle `veh_1` of user `usr_1`, a 2020 TESLA Model 3.
pub fn vehicle(mode: VehicleMode) -> Vehicle {
    Vehicle {
        id: "veh_1".into(),
        app_id: "app_1".into(),
        user_id: "usr_1".into(),
        access_token: "tok".into(),
        make: "TESLA".into(),
        model: "Model 3".into(),
        year: 2020,
        vin: "5YJ3E1EA7KF000000".into(),
        mode,
        simulated: mode == VehicleMode::Simulated,
        created_at: 0,
    }
}
