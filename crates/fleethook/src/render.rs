//! Renders payloads for a webhook: the verification challenge and test payloads of each kind.
//! The bodies themselves are built by `fleethook_wire`; this module chooses which one a webhook
//! gets and fills it from the webhook's settings.

use std::collections::HashMap;

use fleethook_wire::payload::{v2, v3, v4};
use fleethook_wire::samples;
use fleethook_wire::signal::SignalValue;
use fleethook_wire::units::UnitSystem;
use fleethook_wire::v2::{render_endpoint, V2Path, VehicleInfo};

use crate::clock::Millis;
use crate::ids::new_id;
use crate::kinds::{DiagnosticEvent, KindConfig};
use crate::model::{DeliveryPurpose, NewDelivery, Webhook, WebhookKind};

/// The paths a dynamic webhook always carries.
pub const DYNAMIC_PATHS: [V2Path; 3] = [V2Path::Battery, V2Path::Charge, V2Path::Location];

/// The challenge envelope of the webhook's generation: v4.0 for vehicleState, else v2.0. The
/// v4 `deliveryId`/`deliveredAt` are stamped again by the dispatcher for the attempt.
pub fn verify_body(webhook: &Webhook, event_id: &str, challenge: &str, now: Millis) -> String {
    if webhook.kind.is_v4() {
        v4::verify(
            event_id,
            &webhook.id,
            &webhook.name,
            &new_id(),
            now,
            challenge,
        )
    } else {
        v2::verify(&webhook.id, challenge)
    }
}

/// The v2.0 `data` items of one vehicle for the given paths.
pub fn v2_vehicle_data(
    vehicle: &VehicleInfo<'_>,
    signals: &HashMap<String, SignalValue>,
    paths: &[V2Path],
    units: UnitSystem,
) -> v2::V2VehicleData {
    let request_id = new_id();
    let data = paths
        .iter()
        .map(|path| render_endpoint(*path, vehicle, signals, units, &request_id))
        .collect();
    v2::V2VehicleData {
        vehicle_id: vehicle.id.to_string(),
        request_id,
        data,
    }
}

/// A test payload of the webhook's kind (mode `test` / `TEST`), ready for the outbox, built
/// from a sample vehicle with believable values for every signal.
pub fn test_delivery(webhook: &Webhook, now: Millis) -> Result<NewDelivery, String> {
    let config = KindConfig::from_stored(webhook.kind, &webhook.config)?;
    let sample = samples::sample_vehicle();
    let signals = samples::sample_signals(now);
    let vehicle_id = new_id();
    let user_id = new_id();
    let event_id = new_id();
    let vehicle = VehicleInfo {
        id: &vehicle_id,
        make: &sample.make,
        model: &sample.model,
        year: sample.year,
        vin: Some(&sample.vin),
    };
    let (body, event_type) = match &config {
        KindConfig::Scheduled {
            endpoints, units, ..
        } => {
            let data = v2_vehicle_data(&vehicle, &signals, endpoints, *units);
            (
                v2::vehicles_body(&webhook.id, "scheduled", "test", &[data]),
                "scheduled",
            )
        }
        KindConfig::Dynamic => {
            let data = v2_vehicle_data(&vehicle, &signals, &DYNAMIC_PATHS, UnitSystem::Metric);
            (
                v2::vehicles_body(&webhook.id, "dynamic", "test", &[data]),
                "dynamic",
            )
        }
        KindConfig::EventBased { event } => {
            let event = match event {
                DiagnosticEvent::DiagnosticTroubleCodes => v3::Event::trouble_codes(
                    &new_id(),
                    &vehicle_id,
                    &user_id,
                    now,
                    vec![v3::TroubleCode {
                        code: "P302D".into(),
                        timestamp: fleethook_wire::time::iso_millis(now - 3_600_000),
                    }],
                ),
                DiagnosticEvent::DiagnosticSystemAlerts => v3::Event::system_alerts(
                    &new_id(),
                    &vehicle_id,
                    &user_id,
                    now,
                    vec![v3::SystemAlert {
                        system_id: "SYSTEM_TPMS".into(),
                        status: "ALERT".into(),
                        description: Some("Left rear tire sensor battery low".into()),
                    }],
                ),
            };
            let event_type = match config {
                KindConfig::EventBased {
                    event: DiagnosticEvent::DiagnosticSystemAlerts,
                } => "DIAGNOSTIC_SYSTEM_ALERTS",
                _ => "DIAGNOSTIC_TROUBLE_CODES",
            };
            (
                v3::event_delivery(&webhook.id, &new_id(), now, "test", &[event]),
                event_type,
            )
        }
        KindConfig::VehicleState { .. } => {
            let items = config
                .vehicle_state_signals()
                .iter()
                .map(|code| v4::signal_item(code, signals.get(code.as_str()), None))
                .collect();
            let body = v4::vehicle_state(
                &event_id,
                &vehicle_id,
                &v4::V4User {
                    id: user_id.clone(),
                },
                &v4::V4Vehicle {
                    id: vehicle_id.clone(),
                    make: sample.make.clone(),
                    model: sample.model.clone(),
                    year: sample.year,
                },
                items,
                vec![v4::first_delivery_trigger()],
                &webhook.id,
                &webhook.name,
                &new_id(),
                now,
                "TEST",
            );
            (body, "VEHICLE_STATE")
        }
    };
    debug_assert_eq!(
        webhook.kind == WebhookKind::VehicleState,
        event_type == "VEHICLE_STATE"
    );
    Ok(NewDelivery {
        id: new_id(),
        app_id: webhook.app_id.clone(),
        webhook_id: webhook.id.clone(),
        event_id,
        purpose: DeliveryPurpose::Test,
        target_uri: webhook.callback_uri.clone(),
        body,
        event_type: event_type.to_string(),
        vehicle_ids: vec![vehicle_id],
        next_attempt_at: Some(now),
        created_at: now,
    })
}
