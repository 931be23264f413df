//! v4.0 bodies of vehicleState webhooks: `VERIFY`, `VEHICLE_STATE` and `VEHICLE_ERROR`. Times
//! are epoch milliseconds. `eventId` is stable across retries; `deliveryId` and `deliveredAt`
//! are stamped per attempt by [`super::stamp_attempt`].

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::catalog;
use crate::error::{self, Resolution};
use crate::json::{canonical, to_compact};
use crate::signal::SignalValue;

/// `{"id"}` of the vehicle's user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct V4User {
    pub id: String,
}

/// `{"id","make","model","year"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct V4Vehicle {
    pub id: String,
    pub make: String,
    pub model: String,
    pub year: i32,
}

/// A signal named in a trigger or an error: `{"code","name","group"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignalRef {
    pub code: String,
    pub name: String,
    pub group: String,
}

impl SignalRef {
    /// The reference of a code, with name and group from the catalog.
    pub fn from_code(code: &str) -> Self {
        let (name, group) = catalog::name_group(code);
        SignalRef {
            code: code.to_string(),
            name: name.to_string(),
            group: group.to_string(),
        }
    }
}

/// One error of a `VEHICLE_ERROR` delivery. Field order is the key order on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct V4Error {
    #[serde(rename = "type")]
    pub error_type: String,
    pub code: String,
    /// `ERROR`, or `RESOLVED` when the same error clears.
    pub state: String,
    pub description: String,
    pub suggested_user_message: String,
    #[serde(rename = "docURL")]
    pub doc_url: String,
    pub resolution: Resolution,
    /// The signals the error affects.
    pub signals: Vec<SignalRef>,
}

impl V4Error {
    /// An error with docURL, resolution and suggested user message filled in from the type and
    /// code, and the named signals from the catalog.
    pub fn new(
        error_type: &str,
        code: &str,
        state: &str,
        description: &str,
        signal_codes: &[impl AsRef<str>],
    ) -> Self {
        V4Error {
            error_type: error_type.to_string(),
            code: code.to_string(),
            state: state.to_string(),
            description: description.to_string(),
            suggested_user_message: error::suggested_user_message(error_type, Some(code))
                .to_string(),
            doc_url: error::doc_url(error_type, Some(code)),
            resolution: Resolution {
                resolution_type: error::default_resolution(error_type, Some(code))
                    .map(str::to_string),
            },
            signals: signal_codes
                .iter()
                .map(|c| SignalRef::from_code(c.as_ref()))
                .collect(),
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Meta<'a> {
    version: &'static str,
    webhook_id: &'a str,
    webhook_name: &'a str,
    delivery_id: &'a str,
    delivered_at: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    mode: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    signal_count: Option<usize>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Envelope<'a, D: Serialize> {
    event_id: &'a str,
    event_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    vehicle_id: Option<&'a str>,
    data: D,
    #[serde(skip_serializing_if = "Option::is_none")]
    triggers: Option<Vec<Value>>,
    meta: Meta<'a>,
}

#[derive(Serialize)]
struct Challenge<'a> {
    challenge: &'a str,
}

#[derive(Serialize)]
struct StateData<'a, S: Serialize> {
    user: &'a V4User,
    vehicle: &'a V4Vehicle,
    signals: Vec<S>,
}

#[derive(Serialize)]
struct ErrorData<'a> {
    user: &'a V4User,
    vehicle: &'a V4Vehicle,
    errors: &'a [V4Error],
}

/// `{"eventId","eventType":"VERIFY","data":{"challenge"},"meta":{"version":"4.0","webhookId",
/// "webhookName","deliveryId","deliveredAt"}}`.
pub fn verify(
    event_id: &str,
    webhook_id: &str,
    webhook_name: &str,
    delivery_id: &str,
    delivered_at_ms: i64,
    challenge: &str,
) -> String {
    to_compact(&Envelope {
        event_id,
        event_type: "VERIFY",
        vehicle_id: None,
        data: Challenge { challenge },
        triggers: None,
        meta: Meta {
            version: "4.0",
            webhook_id,
            webhook_name,
            delivery_id,
            delivered_at: delivered_at_ms,
            mode: None,
            signal_count: None,
        },
    })
}

/// One item of `data.signals`. With a value and no error: `{"code","name","group","body",
/// "meta":{"oemUpdatedAt"?,"retrievedAt"},"status":{"value":"SUCCESS"}}`. With an error, or
/// with neither (the vehicle never supplied it: `COMPATIBILITY`/`VEHICLE_NOT_CAPABLE`):
/// `{"code","name","group","status":{"value":"ERROR","error":{"type","code"}}}`. Serialized
/// as it stands (no `Value` is built on the way): every change a vehicleState webhook
/// renders has one per signal of the webhook. Field order is the key order on the wire.
#[derive(Debug, Serialize)]
pub struct SignalItem<'a> {
    code: &'a str,
    name: &'a str,
    group: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    body: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    meta: Option<ItemMeta>,
    status: ItemStatus<'a>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ItemMeta {
    #[serde(skip_serializing_if = "Option::is_none")]
    oem_updated_at: Option<i64>,
    retrieved_at: i64,
}

#[derive(Debug, Serialize)]
struct ItemStatus<'a> {
    value: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ItemError<'a>>,
}

#[derive(Debug, Serialize)]
struct ItemError<'a> {
    #[serde(rename = "type")]
    error_type: &'a str,
    code: &'a str,
}

impl<'a> SignalItem<'a> {
    /// The item of `code`: its value, unless there is an `error` (type, code) or no value.
    pub fn new(
        code: &'a str,
        value: Option<&SignalValue>,
        error: Option<(&'a str, &'a str)>,
    ) -> SignalItem<'a> {
        let (name, group) = catalog::name_group(code);
        match (value, error) {
            (Some(value), None) => SignalItem {
                code,
                name,
                group,
                body: Some(canonical(&value.body)),
                meta: Some(ItemMeta {
                    oem_updated_at: value.oem_updated_at,
                    retrieved_at: value.retrieved_at,
                }),
                status: ItemStatus {
                    value: "SUCCESS",
                    error: None,
                },
            },
            (_, error) => {
                let (error_type, error_code) =
                    error.unwrap_or(("COMPATIBILITY", "VEHICLE_NOT_CAPABLE"));
                SignalItem {
                    code,
                    name,
                    group,
                    body: None,
                    meta: None,
                    status: ItemStatus {
                        value: "ERROR",
                        error: Some(ItemError {
                            error_type,
                            code: error_code,
                        }),
                    },
                }
            }
        }
    }
}

/// [`SignalItem`] as a `Value`.
pub fn signal_item(code: &str, value: Option<&SignalValue>, error: Option<(&str, &str)>) -> Value {
    // Infallible: strings, integers and JSON values only.
    serde_json::to_value(SignalItem::new(code, value, error)).unwrap_or(Value::Null)
}

/// `{"type":"FIRST_DELIVERY"}`.
pub fn first_delivery_trigger() -> Value {
    json!({"type": "FIRST_DELIVERY"})
}

/// `{"type":"SIGNAL_UPDATED","signal":{"code","name","group"}}`.
pub fn signal_updated_trigger(code: &str) -> Value {
    json!({"type": "SIGNAL_UPDATED", "signal": SignalRef::from_code(code)})
}

/// A `VEHICLE_STATE` body: `{"eventId","eventType","vehicleId","data":{"user","vehicle",
/// "signals"},"triggers","meta":{…,"mode","signalCount"}}`; `mode` is `LIVE` or `TEST`. The
/// signals are [`SignalItem`]s, or their `Value`s.
#[allow(clippy::too_many_arguments)] // Mirrors the payload's fields one to one.
pub fn vehicle_state<S: Serialize>(
    event_id: &str,
    vehicle_id: &str,
    user: &V4User,
    vehicle: &V4Vehicle,
    signals: Vec<S>,
    triggers: Vec<Value>,
    webhook_id: &str,
    webhook_name: &str,
    delivery_id: &str,
    delivered_at_ms: i64,
    mode: &str,
) -> String {
    let signal_count = signals.len();
    to_compact(&Envelope {
        event_id,
        event_type: "VEHICLE_STATE",
        vehicle_id: Some(vehicle_id),
        data: StateData {
            user,
            vehicle,
            signals,
        },
        triggers: Some(triggers),
        meta: Meta {
            version: "4.0",
            webhook_id,
            webhook_name,
            delivery_id,
            delivered_at: delivered_at_ms,
            mode: Some(mode),
            signal_count: Some(signal_count),
        },
    })
}

/// A `VEHICLE_ERROR` body: `{"eventId","eventType","vehicleId","data":{"user","vehicle",
/// "errors"},"meta":{…,"mode"}}`.
#[allow(clippy::too_many_arguments)] // Mirrors the payload's fields one to one.
pub fn vehicle_error(
    event_id: &str,
    vehicle_id: &str,
    user: &V4User,
    vehicle: &V4Vehicle,
    errors: &[V4Error],
    webhook_id: &str,
    webhook_name: &str,
    delivery_id: &str,
    delivered_at_ms: i64,
    mode: &str,
) -> String {
    to_compact(&Envelope {
        event_id,
        event_type: "VEHICLE_ERROR",
        vehicle_id: Some(vehicle_id),
        data: ErrorData {
            user,
            vehicle,
            errors,
        },
        triggers: None,
        meta: Meta {
            version: "4.0",
            webhook_id,
            webhook_name,
            delivery_id,
            delivered_at: delivered_at_ms,
            mode: Some(mode),
            signal_count: None,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user() -> V4User {
        V4User { id: "usr_1".into() }
    }

    fn vehicle() -> V4Vehicle {
        V4Vehicle {
            id: "veh_1".into(),
            make: "TESLA".into(),
            model: "Model 3".into(),
            year: 2020,
        }
    }

    #[test]
    fn verify_matches_the_spec_envelope() {
        assert_eq!(
            verify(
                "evt_1",
                "wh_1",
                "Battery alerts",
                "dlv_1",
                1_761_896_351_529,
                "8c0d1f"
            ),
            r#"{"eventId":"evt_1","eventType":"VERIFY","data":{"challenge":"8c0d1f"},"meta":{"version":"4.0","webhookId":"wh_1","webhookName":"Battery alerts","deliveryId":"dlv_1","deliveredAt":1761896351529}}"#
        );
    }

    #[test]
    fn vehicle_state_matches_the_spec_example() {
        let soc = SignalValue {
            code: "tractionbattery-stateofcharge".into(),
            body: json!({"unit":"percent","value":78}),
            oem_updated_at: Some(1_731_940_328_000),
            retrieved_at: 1_731_940_330_000,
        };
        let not_capable = Some(("COMPATIBILITY", "VEHICLE_NOT_CAPABLE"));
        let typed = vec![
            SignalItem::new("tractionbattery-stateofcharge", Some(&soc), None),
            SignalItem::new("location-isathome", None, not_capable),
        ];
        let values = vec![
            signal_item("tractionbattery-stateofcharge", Some(&soc), None),
            signal_item("location-isathome", None, not_capable),
        ];
        fn body<S: Serialize>(signals: Vec<S>) -> String {
            vehicle_state(
                "evt_1",
                "veh_1",
                &user(),
                &vehicle(),
                signals,
                vec![signal_updated_trigger("tractionbattery-stateofcharge")],
                "wh_1",
                "Battery",
                "dlv_1",
                1_731_940_331_000,
                "LIVE",
            )
        }
        let from_values = body(values);
        assert_eq!(
            body(typed),
            from_values,
            "typed items and their values serialize alike"
        );
        let body = from_values;
        assert_eq!(
            body,
            concat!(
                r#"{"eventId":"evt_1","eventType":"VEHICLE_STATE","vehicleId":"veh_1","data":{"#,
                r#""user":{"id":"usr_1"},"vehicle":{"id":"veh_1","make":"TESLA","model":"Model 3","year":2020},"#,
                r#""signals":[{"code":"tractionbattery-stateofcharge","name":"StateOfCharge","group":"TractionBattery","#,
                r#""body":{"unit":"percent","value":78},"meta":{"oemUpdatedAt":1731940328000,"retrievedAt":1731940330000},"status":{"value":"SUCCESS"}},"#,
                r#"{"code":"location-isathome","name":"IsAtHome","group":"Location","#,
                r#""status":{"value":"ERROR","error":{"type":"COMPATIBILITY","code":"VEHICLE_NOT_CAPABLE"}}}]},"#,
                r#""triggers":[{"type":"SIGNAL_UPDATED","signal":{"code":"tractionbattery-stateofcharge","name":"StateOfCharge","group":"TractionBattery"}}],"#,
                r#""meta":{"version":"4.0","webhookId":"wh_1","webhookName":"Battery","deliveryId":"dlv_1","deliveredAt":1731940331000,"mode":"LIVE","signalCount":2}}"#
            )
        );
    }

    #[test]
    fn a_signal_without_value_or_error_is_not_capable_and_errors_win_over_values() {
        assert_eq!(
            signal_item("location-isathome", None, None).to_string(),
            r#"{"code":"location-isathome","name":"IsAtHome","group":"Location","status":{"value":"ERROR","error":{"type":"COMPATIBILITY","code":"VEHICLE_NOT_CAPABLE"}}}"#
        );
        let v = SignalValue {
            code: "location-isathome".into(),
            body: json!({"value":true}),
            oem_updated_at: None,
            retrieved_at: 5,
        };
        assert_eq!(
            signal_item("location-isathome", Some(&v), None).to_string(),
            r#"{"code":"location-isathome","name":"IsAtHome","group":"Location","body":{"value":true},"meta":{"retrievedAt":5},"status":{"value":"SUCCESS"}}"#
        );
        let failed = signal_item(
            "location-isathome",
            Some(&v),
            Some(("VEHICLE_STATE", "ASLEEP")),
        );
        assert_eq!(
            failed["status"],
            json!({"value":"ERROR","error":{"type":"VEHICLE_STATE","code":"ASLEEP"}})
        );
        assert!(failed.get("body").is_none());
    }

    #[test]
    fn first_delivery_trigger_is_just_its_type() {
        assert_eq!(
            first_delivery_trigger().to_string(),
            r#"{"type":"FIRST_DELIVERY"}"#
        );
    }

    #[test]
    fn vehicle_error_matches_the_spec_example() {
        let error = V4Error {
            error_type: "CONNECTED_SERVICES_ACCOUNT".into(),
            code: "AUTHENTICATION_FAILED".into(),
            state: "ERROR".into(),
            description: "Smartcar was unable to authenticate.".into(),
            suggested_user_message: "Please re-connect your car.".into(),
            doc_url: "https://smartcar.com/docs/errors/api-errors/connected-services-account-errors#authentication-failed".into(),
            resolution: Resolution { resolution_type: Some("REAUTHENTICATE".into()) },
            signals: vec![SignalRef::from_code("tractionbattery-stateofcharge")],
        };
        let body = vehicle_error(
            "evt_1",
            "veh_1",
            &user(),
            &vehicle(),
            std::slice::from_ref(&error),
            "wh_1",
            "Battery",
            "dlv_1",
            1_731_940_331_000,
            "LIVE",
        );
        assert_eq!(
            body,
            concat!(
                r#"{"eventId":"evt_1","eventType":"VEHICLE_ERROR","vehicleId":"veh_1","data":{"#,
                r#""user":{"id":"usr_1"},"vehicle":{"id":"veh_1","make":"TESLA","model":"Model 3","year":2020},"errors":["#,
                r#"{"type":"CONNECTED_SERVICES_ACCOUNT","code":"AUTHENTICATION_FAILED","state":"ERROR","description":"Smartcar was unable to authenticate.","#,
                r#""suggestedUserMessage":"Please re-connect your car.","#,
                r#""docURL":"https://smartcar.com/docs/errors/api-errors/connected-services-account-errors#authentication-failed","#,
                r#""resolution":{"type":"REAUTHENTICATE"},"#,
                r#""signals":[{"code":"tractionbattery-stateofcharge","name":"StateOfCharge","group":"TractionBattery"}]}]},"#,
                r#""meta":{"version":"4.0","webhookId":"wh_1","webhookName":"Battery","deliveryId":"dlv_1","deliveredAt":1731940331000,"mode":"LIVE"}}"#
            )
        );
        let parsed: Value = serde_json::from_str(&body).unwrap();
        let back: V4Error = serde_json::from_value(parsed["data"]["errors"][0].clone()).unwrap();
        assert_eq!(back, error);
    }

    #[test]
    fn v4_error_new_fills_in_the_documentation_and_resolution() {
        let e = V4Error::new(
            "CONNECTED_SERVICES_ACCOUNT",
            "AUTHENTICATION_FAILED",
            "RESOLVED",
            "d",
            &["location-preciselocation"],
        );
        assert_eq!(e.doc_url, "https://smartcar.com/docs/errors/api-errors/connected-services-account-errors#authentication-failed");
        assert_eq!(
            e.resolution.resolution_type.as_deref(),
            Some("REAUTHENTICATE")
        );
        assert_eq!(
            e.signals,
            vec![SignalRef {
                code: "location-preciselocation".into(),
                name: "PreciseLocation".into(),
                group: "Location".into()
            }]
        );
        assert!(!e.suggested_user_message.is_empty());
        let none: [&str; 0] = [];
        assert!(
            V4Error::new("COMPATIBILITY", "VEHICLE_NOT_CAPABLE", "ERROR", "d", &none)
                .signals
                .is_empty()
        );
    }
}
