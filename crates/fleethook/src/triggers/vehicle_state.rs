//! vehicleState webhooks: the v4.0 `VEHICLE_STATE` and `VEHICLE_ERROR` deliveries of a first
//! delivery and of an ingest.
//!
//! Pure: the caller passes the webhook, the vehicle, its signals, what the ingest changed and
//! the platform time; nothing here reads the store or the clock. Bodies are built by
//! `fleethook_wire::payload::v4`; this module decides which deliveries there are and fills
//! them (SPEC sections 4 and 5):
//! - every `VEHICLE_STATE` carries all of the webhook's signals (triggers, then data, each
//!   once), a signal the vehicle has no value for as `COMPATIBILITY`/`VEHICLE_NOT_CAPABLE`;
//! - a `VEHICLE_STATE` follows the first delivery and every ingest that changed a *trigger*
//!   signal's value; data signals changing alone send nothing;
//! - errors go out as `VEHICLE_ERROR` to `errorCallbackUri` when set, else `callbackUri`.
//!
//! Each delivery gets a fresh `eventId` (its `NewDelivery::event_id`), which stays fixed across
//! retries: the dispatcher keeps the stored body and only re-stamps `meta.deliveryId` and
//! `meta.deliveredAt`, so the ones written here are placeholders.

use std::collections::HashMap;

use fleethook_wire::payload::v4::{self, V4Error, V4User, V4Vehicle};
use fleethook_wire::signal::SignalValue;
use serde_json::Value;

use crate::clock::Millis;
use crate::ids::new_id;
use crate::kinds::KindConfig;
use crate::model::{
    DeliveryPurpose, NewDelivery, Vehicle, VehicleErrorState, VehicleMode, Webhook,
};
use crate::store::IngestApplied;

/// The error a configured signal the vehicle cannot supply is reported with.
const NOT_CAPABLE: (&str, &str) = ("COMPATIBILITY", "VEHICLE_NOT_CAPABLE");

/// The description of that error, as the v2.0 endpoints word it.
const NOT_CAPABLE_DESCRIPTION: &str =
    "The vehicle is incapable of performing your request: it does not supply these signals.";

/// The deliveries of a first delivery (after subscribe, resubscribe or re-enable): one
/// `VEHICLE_STATE` with `triggers: [{"type":"FIRST_DELIVERY"}]` and every configured signal at
/// its value in `signals`, then, when some configured signals have no value, one
/// `VEHICLE_ERROR` (`COMPATIBILITY`/`VEHICLE_NOT_CAPABLE`, state `ERROR`) naming them. Empty
/// for a webhook that is not vehicleState.
pub fn first_delivery(
    webhook: &Webhook,
    vehicle: &Vehicle,
    signals: &HashMap<String, SignalValue>,
    now: Millis,
) -> Vec<NewDelivery> {
    let Some(codes) = configured_signals(webhook) else {
        return Vec::new();
    };
    let mut deliveries = vec![state_delivery(
        webhook,
        vehicle,
        &codes,
        signals,
        vec![v4::first_delivery_trigger()],
        now,
    )];
    let missing: Vec<&String> = codes
        .iter()
        .filter(|code| !signals.contains_key(code.as_str()))
        .collect();
    if !missing.is_empty() {
        let error = V4Error::new(
            NOT_CAPABLE.0,
            NOT_CAPABLE.1,
            "ERROR",
            NOT_CAPABLE_DESCRIPTION,
            &missing,
        );
        deliveries.push(error_delivery(webhook, vehicle, &[error], now));
    }
    deliveries
}

/// The deliveries one ingest causes:
/// - when the value of one or more trigger signals changed, one `VEHICLE_STATE` with a
///   `SIGNAL_UPDATED` trigger per changed trigger signal (in the webhook's trigger order) and
///   every configured signal at its value in `signals_after`;
/// - when errors were raised or resolved, one `VEHICLE_ERROR` holding them all, raised (state
///   `ERROR`) first, then resolved (state `RESOLVED`).
///
/// Empty when neither happened, or for a webhook that is not vehicleState.
pub fn on_change(
    webhook: &Webhook,
    vehicle: &Vehicle,
    applied: &IngestApplied,
    signals_after: &HashMap<String, SignalValue>,
    now: Millis,
) -> Vec<NewDelivery> {
    let Ok(config) = KindConfig::from_stored(webhook.kind, &webhook.config) else {
        return Vec::new();
    };
    let KindConfig::VehicleState { triggers, .. } = &config else {
        return Vec::new();
    };
    let mut deliveries = Vec::new();
    let fired: Vec<Value> = triggers
        .iter()
        .filter(|code| applied.changes.iter().any(|c| &c.code == *code))
        .map(|code| v4::signal_updated_trigger(code))
        .collect();
    if !fired.is_empty() {
        deliveries.push(state_delivery(
            webhook,
            vehicle,
            &config.vehicle_state_signals(),
            signals_after,
            fired,
            now,
        ));
    }
    let errors: Vec<V4Error> = applied
        .raised
        .iter()
        .map(|e| v4_error(e, "ERROR"))
        .chain(applied.resolved.iter().map(|e| v4_error(e, "RESOLVED")))
        .collect();
    if !errors.is_empty() {
        deliveries.push(error_delivery(webhook, vehicle, &errors, now));
    }
    deliveries
}

/// The webhook's signals in payload order, or `None` when it is not a vehicleState webhook.
fn configured_signals(webhook: &Webhook) -> Option<Vec<String>> {
    match KindConfig::from_stored(webhook.kind, &webhook.config) {
        Ok(config @ KindConfig::VehicleState { .. }) => Some(config.vehicle_state_signals()),
        _ => None,
    }
}

/// v4 modes: `LIVE` for live vehicles; simulated vehicles are `TEST`, like test payloads, so a
/// receiver never mistakes simulator data for a real car.
fn v4_mode(mode: VehicleMode) -> &'static str {
    match mode {
        VehicleMode::Live => "LIVE",
        VehicleMode::Simulated => "TEST",
    }
}

fn v4_user(vehicle: &Vehicle) -> V4User {
    V4User {
        id: vehicle.user_id.clone(),
    }
}

fn v4_vehicle(vehicle: &Vehicle) -> V4Vehicle {
    V4Vehicle {
        id: vehicle.id.clone(),
        make: vehicle.make.clone(),
        model: vehicle.model.clone(),
        year: vehicle.year,
    }
}

/// A source error as a v4 error entry. Sources may leave the description out; the entry still
/// needs one, so it falls back to naming the type and code.
fn v4_error(error: &VehicleErrorState, state: &str) -> V4Error {
    let description = error
        .description
        .clone()
        .unwrap_or_else(|| format!("The vehicle reported {}: {}.", error.error_type, error.code));
    V4Error::new(
        &error.error_type,
        &error.code,
        state,
        &description,
        &error.signals,
    )
}

/// A `VEHICLE_STATE` delivery to the main callback with every code in `codes` at its value.
fn state_delivery(
    webhook: &Webhook,
    vehicle: &Vehicle,
    codes: &[String],
    signals: &HashMap<String, SignalValue>,
    triggers: Vec<Value>,
    now: Millis,
) -> NewDelivery {
    let items: Vec<v4::SignalItem<'_>> = codes
        .iter()
        .map(|code| match signals.get(code.as_str()) {
            Some(value) => v4::SignalItem::new(code, Some(value), None),
            None => v4::SignalItem::new(code, None, Some(NOT_CAPABLE)),
        })
        .collect();
    let event_id = new_id();
    let body = v4::vehicle_state(
        &event_id,
        &vehicle.id,
        &v4_user(vehicle),
        &v4_vehicle(vehicle),
        items,
        triggers,
        &webhook.id,
        &webhook.name,
        &new_id(),
        now,
        v4_mode(vehicle.mode),
    );
    new_delivery(
        webhook,
        vehicle,
        event_id,
        webhook.callback_uri.clone(),
        body,
        "VEHICLE_STATE",
        now,
    )
}

/// A `VEHICLE_ERROR` delivery to the error callback, or the main one when none is set.
fn error_delivery(
    webhook: &Webhook,
    vehicle: &Vehicle,
    errors: &[V4Error],
    now: Millis,
) -> NewDelivery {
    let event_id = new_id();
    let body = v4::vehicle_error(
        &event_id,
        &vehicle.id,
        &v4_user(vehicle),
        &v4_vehicle(vehicle),
        errors,
        &webhook.id,
        &webhook.name,
        &new_id(),
        now,
        v4_mode(vehicle.mode),
    );
    let target = webhook
        .error_callback_uri
        .clone()
        .unwrap_or_else(|| webhook.callback_uri.clone());
    new_delivery(
        webhook,
        vehicle,
        event_id,
        target,
        body,
        "VEHICLE_ERROR",
        now,
    )
}

fn new_delivery(
    webhook: &Webhook,
    vehicle: &Vehicle,
    event_id: String,
    target_uri: String,
    body: String,
    event_type: &str,
    now: Millis,
) -> NewDelivery {
    NewDelivery {
        id: new_id(),
        app_id: webhook.app_id.clone(),
        webhook_id: webhook.id.clone(),
        event_id,
        purpose: DeliveryPurpose::Event,
        target_uri,
        body,
        event_type: event_type.to_string(),
        vehicle_ids: vec![vehicle.id.clone()],
        next_attempt_at: Some(now),
        created_at: now,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::WebhookKind;
    use crate::store::SignalChange;
    use crate::triggers::fixtures;
    use serde_json::json;

    const NOW: Millis = 1_731_940_331_000;
    const SOC: &str = "tractionbattery-stateofcharge";
    const CABLE: &str = "charge-ischargingcableconnected";
    const HOME: &str = "location-isathome";
    const RANGE: &str = "tractionbattery-range";

    fn webhook(error_callback: Option<&str>) -> Webhook {
        Webhook {
            error_callback_uri: error_callback.map(str::to_string),
            // SOC is both a trigger and data: it must appear once, among the triggers.
            ..fixtures::webhook(
                WebhookKind::VehicleState,
                "Battery",
                "https://example.com/state",
                json!({"triggers": [SOC, CABLE], "data": [HOME, RANGE, SOC]}),
            )
        }
    }

    fn vehicle(mode: VehicleMode) -> Vehicle {
        fixtures::vehicle(mode)
    }

    fn value(code: &str, body: Value) -> (String, SignalValue) {
        (
            code.to_string(),
            SignalValue {
                code: code.into(),
                body,
                oem_updated_at: Some(1_731_940_328_000),
                retrieved_at: 1_731_940_330_000,
            },
        )
    }

    /// Every configured signal but `location-isathome`.
    fn signals() -> HashMap<String, SignalValue> {
        HashMap::from([
            value(SOC, json!({"unit":"percent","value":78})),
            value(CABLE, json!({"value":true})),
            value(RANGE, json!({"unit":"km","value":310.5})),
        ])
    }

    fn all_signals() -> HashMap<String, SignalValue> {
        let mut all = signals();
        all.extend([value(HOME, json!({"value":false}))]);
        all
    }

    fn changed(codes: &[&str]) -> IngestApplied {
        IngestApplied {
            changes: codes
                .iter()
                .map(|code| SignalChange {
                    code: code.to_string(),
                    previous: Some(json!({"value":1})),
                    current: json!({"value":2}),
                })
                .collect(),
            ..Default::default()
        }
    }

    fn error(error_type: &str, code: &str, description: Option<&str>) -> VehicleErrorState {
        VehicleErrorState {
            error_type: error_type.into(),
            code: code.into(),
            description: description.map(str::to_string),
            signals: vec![SOC.into()],
        }
    }

    fn keys(v: &Value) -> Vec<&str> {
        v.as_object().unwrap().keys().map(String::as_str).collect()
    }

    /// Parses a body, checks that re-serializing writes the identical text and that the keys
    /// are in SPEC section 5's order, and returns it.
    fn parse(d: &NewDelivery) -> Value {
        let v: Value = serde_json::from_str(&d.body).unwrap();
        assert_eq!(serde_json::to_string(&v).unwrap(), d.body);
        assert_eq!(v["eventId"], d.event_id.as_str());
        assert_eq!(v["eventType"], d.event_type.as_str());
        assert_eq!(v["vehicleId"], "veh_1");
        assert_eq!(
            v["data"]["user"],
            json!({"id":"usr_1"}),
            "user is the vehicle's user"
        );
        assert_eq!(
            v["data"]["vehicle"],
            json!({"id":"veh_1","make":"TESLA","model":"Model 3","year":2020})
        );
        assert_eq!(
            (d.purpose, d.next_attempt_at, d.created_at),
            (DeliveryPurpose::Event, Some(NOW), NOW)
        );
        assert_eq!(
            (d.app_id.as_str(), d.webhook_id.as_str()),
            ("app_1", "wh_1")
        );
        assert_eq!(d.vehicle_ids, vec!["veh_1"]);
        assert_ne!(v["meta"]["deliveryId"], d.event_id.as_str());
        assert_eq!(v["meta"]["deliveredAt"], NOW);
        assert_eq!(v["meta"]["webhookId"], "wh_1");
        assert_eq!(v["meta"]["webhookName"], "Battery");
        assert_eq!(v["meta"]["version"], "4.0");
        match d.event_type.as_str() {
            "VEHICLE_STATE" => {
                assert_eq!(
                    keys(&v),
                    [
                        "eventId",
                        "eventType",
                        "vehicleId",
                        "data",
                        "triggers",
                        "meta"
                    ]
                );
                assert_eq!(keys(&v["data"]), ["user", "vehicle", "signals"]);
                assert_eq!(
                    keys(&v["meta"]),
                    [
                        "version",
                        "webhookId",
                        "webhookName",
                        "deliveryId",
                        "deliveredAt",
                        "mode",
                        "signalCount"
                    ]
                );
                assert_eq!(
                    v["meta"]["signalCount"],
                    v["data"]["signals"].as_array().unwrap().len()
                );
            }
            "VEHICLE_ERROR" => {
                assert_eq!(
                    keys(&v),
                    ["eventId", "eventType", "vehicleId", "data", "meta"]
                );
                assert_eq!(keys(&v["data"]), ["user", "vehicle", "errors"]);
                assert_eq!(
                    keys(&v["meta"]),
                    [
                        "version",
                        "webhookId",
                        "webhookName",
                        "deliveryId",
                        "deliveredAt",
                        "mode"
                    ]
                );
                for e in v["data"]["errors"].as_array().unwrap() {
                    assert_eq!(
                        keys(e),
                        [
                            "type",
                            "code",
                            "state",
                            "description",
                            "suggestedUserMessage",
                            "docURL",
                            "resolution",
                            "signals"
                        ]
                    );
                }
            }
            other => panic!("unexpected event type {other}"),
        }
        v
    }

    fn signal_codes(v: &Value) -> Vec<&str> {
        v["data"]["signals"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["code"].as_str().unwrap())
            .collect()
    }

    fn signal_status(v: &Value, code: &str) -> Value {
        v["data"]["signals"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["code"] == code)
            .unwrap()["status"]
            .clone()
    }

    #[test]
    fn first_delivery_carries_every_signal_triggers_then_data() {
        let deliveries = first_delivery(
            &webhook(Some("https://example.com/errors")),
            &vehicle(VehicleMode::Live),
            &all_signals(),
            NOW,
        );
        assert_eq!(deliveries.len(), 1, "no missing signal, no error");
        let d = &deliveries[0];
        assert_eq!(d.target_uri, "https://example.com/state");
        let v = parse(d);
        assert_eq!(signal_codes(&v), [SOC, CABLE, HOME, RANGE]);
        assert_eq!(v["meta"]["signalCount"], 4);
        assert_eq!(v["meta"]["mode"], "LIVE");
        assert_eq!(v["triggers"], json!([{"type":"FIRST_DELIVERY"}]));
        assert_eq!(
            v["data"]["signals"][0],
            json!({"code":SOC,"name":"StateOfCharge","group":"TractionBattery",
                "body":{"unit":"percent","value":78},
                "meta":{"oemUpdatedAt":1_731_940_328_000_i64,"retrievedAt":1_731_940_330_000_i64},
                "status":{"value":"SUCCESS"}})
        );
    }

    #[test]
    fn a_missing_signal_is_an_error_status_and_a_vehicle_error_to_the_error_callback() {
        let deliveries = first_delivery(
            &webhook(Some("https://example.com/errors")),
            &vehicle(VehicleMode::Simulated),
            &signals(),
            NOW,
        );
        assert_eq!(deliveries.len(), 2);
        let (state, error) = (&deliveries[0], &deliveries[1]);
        assert_eq!(state.event_type, "VEHICLE_STATE");
        let v = parse(state);
        assert_eq!(signal_codes(&v), [SOC, CABLE, HOME, RANGE]);
        assert_eq!(
            signal_status(&v, HOME),
            json!({"value":"ERROR","error":{"type":"COMPATIBILITY","code":"VEHICLE_NOT_CAPABLE"}})
        );
        assert_eq!(signal_status(&v, SOC), json!({"value":"SUCCESS"}));
        assert_eq!(v["meta"]["mode"], "TEST", "simulated vehicles are TEST");

        assert_eq!(error.event_type, "VEHICLE_ERROR");
        assert_eq!(error.target_uri, "https://example.com/errors");
        assert_ne!(error.event_id, state.event_id);
        let e = parse(error);
        assert_eq!(e["meta"]["mode"], "TEST");
        let errors = e["data"]["errors"].as_array().unwrap();
        assert_eq!(errors.len(), 1);
        assert_eq!(
            (&errors[0]["type"], &errors[0]["code"], &errors[0]["state"]),
            (
                &json!("COMPATIBILITY"),
                &json!("VEHICLE_NOT_CAPABLE"),
                &json!("ERROR")
            )
        );
        assert_eq!(
            errors[0]["signals"],
            json!([{"code":HOME,"name":"IsAtHome","group":"Location"}])
        );
    }

    #[test]
    fn without_an_error_callback_errors_go_to_the_main_callback() {
        let deliveries =
            first_delivery(&webhook(None), &vehicle(VehicleMode::Live), &signals(), NOW);
        assert_eq!(deliveries[1].event_type, "VEHICLE_ERROR");
        assert_eq!(deliveries[1].target_uri, "https://example.com/state");
    }

    #[test]
    fn a_trigger_change_sends_signal_updated_per_changed_trigger_and_every_signal() {
        // Changed in the opposite order to the webhook's triggers, plus a data signal.
        let applied = changed(&[RANGE, CABLE, SOC]);
        let deliveries = on_change(
            &webhook(None),
            &vehicle(VehicleMode::Live),
            &applied,
            &signals(),
            NOW,
        );
        assert_eq!(deliveries.len(), 1);
        let d = &deliveries[0];
        assert_eq!(d.target_uri, "https://example.com/state");
        let v = parse(d);
        assert_eq!(
            v["triggers"],
            json!([
                {"type":"SIGNAL_UPDATED","signal":{"code":SOC,"name":"StateOfCharge","group":"TractionBattery"}},
                {"type":"SIGNAL_UPDATED","signal":{"code":CABLE,"name":"IsChargingCableConnected","group":"Charge"}}
            ])
        );
        assert_eq!(signal_codes(&v), [SOC, CABLE, HOME, RANGE]);
        assert_eq!(v["meta"]["signalCount"], 4);
        assert_eq!(signal_status(&v, HOME)["value"], "ERROR");
        assert_eq!(
            v["data"]["signals"][3]["body"],
            json!({"unit":"km","value":310.5})
        );

        let one = on_change(
            &webhook(None),
            &vehicle(VehicleMode::Live),
            &changed(&[CABLE]),
            &signals(),
            NOW,
        );
        assert_eq!(
            parse(&one[0])["triggers"].as_array().unwrap().len(),
            1,
            "only the changed trigger"
        );
    }

    #[test]
    fn a_data_only_change_sends_nothing() {
        let deliveries = on_change(
            &webhook(None),
            &vehicle(VehicleMode::Live),
            &changed(&[RANGE, HOME]),
            &all_signals(),
            NOW,
        );
        assert!(deliveries.is_empty());
        assert!(on_change(
            &webhook(None),
            &vehicle(VehicleMode::Live),
            &IngestApplied::default(),
            &all_signals(),
            NOW
        )
        .is_empty());
    }

    #[test]
    fn raised_and_resolved_errors_share_one_vehicle_error() {
        let applied = IngestApplied {
            raised: vec![error(
                "CONNECTED_SERVICES_ACCOUNT",
                "AUTHENTICATION_FAILED",
                Some("Smartcar was unable to authenticate."),
            )],
            resolved: vec![error("VEHICLE_STATE", "ASLEEP", None)],
            ..Default::default()
        };
        let deliveries = on_change(
            &webhook(Some("https://example.com/errors")),
            &vehicle(VehicleMode::Live),
            &applied,
            &all_signals(),
            NOW,
        );
        assert_eq!(deliveries.len(), 1, "errors alone send no VEHICLE_STATE");
        let d = &deliveries[0];
        assert_eq!(d.event_type, "VEHICLE_ERROR");
        assert_eq!(d.target_uri, "https://example.com/errors");
        let v = parse(d);
        assert_eq!(v["meta"]["mode"], "LIVE");
        let errors = v["data"]["errors"].as_array().unwrap();
        let summary: Vec<(&str, &str, &str)> = errors
            .iter()
            .map(|e| {
                (
                    e["type"].as_str().unwrap(),
                    e["code"].as_str().unwrap(),
                    e["state"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                (
                    "CONNECTED_SERVICES_ACCOUNT",
                    "AUTHENTICATION_FAILED",
                    "ERROR"
                ),
                ("VEHICLE_STATE", "ASLEEP", "RESOLVED")
            ]
        );
        assert_eq!(
            errors[0]["description"],
            "Smartcar was unable to authenticate."
        );
        assert_eq!(errors[0]["resolution"], json!({"type":"REAUTHENTICATE"}));
        assert!(!errors[1]["description"].as_str().unwrap().is_empty());
        assert_eq!(
            errors[0]["signals"],
            json!([{"code":SOC,"name":"StateOfCharge","group":"TractionBattery"}])
        );
    }

    #[test]
    fn a_trigger_change_with_errors_sends_both() {
        let mut applied = changed(&[SOC]);
        applied.resolved = vec![error(
            "CONNECTED_SERVICES_ACCOUNT",
            "AUTHENTICATION_FAILED",
            None,
        )];
        let deliveries = on_change(
            &webhook(None),
            &vehicle(VehicleMode::Live),
            &applied,
            &all_signals(),
            NOW,
        );
        let types: Vec<&str> = deliveries.iter().map(|d| d.event_type.as_str()).collect();
        assert_eq!(types, ["VEHICLE_STATE", "VEHICLE_ERROR"]);
        assert_eq!(
            parse(&deliveries[1])["data"]["errors"][0]["state"],
            "RESOLVED"
        );
    }

    #[test]
    fn other_kinds_get_nothing() {
        let mut other = webhook(None);
        other.kind = WebhookKind::EventBased;
        other.config = json!({"events":["DIAGNOSTIC_TROUBLE_CODES"]});
        assert!(first_delivery(&other, &vehicle(VehicleMode::Live), &signals(), NOW).is_empty());
        assert!(on_change(
            &other,
            &vehicle(VehicleMode::Live),
            &changed(&[SOC]),
            &signals(),
            NOW
        )
        .is_empty());
    }
}
