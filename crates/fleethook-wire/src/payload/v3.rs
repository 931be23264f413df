//! v3.0 bodies: `EVENT_DELIVERY` of eventBased (diagnostics) webhooks, and the signal resource
//! of `GET /v3/vehicles/{id}/signals/{code}`. The challenge of eventBased webhooks is the v2.0
//! one ([`super::v2::verify`]).

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::catalog;
use crate::json::{canonical, to_compact};
use crate::signal::SignalValue;
use crate::time::iso_millis;

/// An active diagnostic trouble code: `{"code","timestamp"}` (ISO 8601, when it became active).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TroubleCode {
    pub code: String,
    pub timestamp: String,
}

/// A system whose status changed: `{"systemId","status","description"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SystemAlert {
    /// `SYSTEM_` and the signal name in upper snake case, e.g. `SYSTEM_TPMS`.
    pub system_id: String,
    /// `ALERT` or `OK`.
    pub status: String,
    /// `null` when the vehicle gave none.
    pub description: Option<String>,
}

/// What an event carries, tagged by `eventType`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "eventType")]
pub enum EventDetail {
    /// The full set of active DTCs after the change (empty when the last one cleared).
    #[serde(rename = "DIAGNOSTIC_TROUBLE_CODES")]
    TroubleCodes { codes: Vec<TroubleCode> },
    /// The systems whose status changed.
    #[serde(rename = "DIAGNOSTIC_SYSTEM_ALERTS")]
    SystemAlerts { alerts: Vec<SystemAlert> },
}

/// One event: `{"eventId","vehicleId","userId","eventTime","eventType",("codes"|"alerts")}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    pub event_id: String,
    pub vehicle_id: String,
    pub user_id: String,
    /// ISO 8601 with milliseconds.
    pub event_time: String,
    #[serde(flatten)]
    pub detail: EventDetail,
}

impl Event {
    /// A `DIAGNOSTIC_TROUBLE_CODES` event.
    pub fn trouble_codes(
        event_id: &str,
        vehicle_id: &str,
        user_id: &str,
        event_time_ms: i64,
        codes: Vec<TroubleCode>,
    ) -> Self {
        Event::new(
            event_id,
            vehicle_id,
            user_id,
            event_time_ms,
            EventDetail::TroubleCodes { codes },
        )
    }

    /// A `DIAGNOSTIC_SYSTEM_ALERTS` event.
    pub fn system_alerts(
        event_id: &str,
        vehicle_id: &str,
        user_id: &str,
        event_time_ms: i64,
        alerts: Vec<SystemAlert>,
    ) -> Self {
        Event::new(
            event_id,
            vehicle_id,
            user_id,
            event_time_ms,
            EventDetail::SystemAlerts { alerts },
        )
    }

    fn new(
        event_id: &str,
        vehicle_id: &str,
        user_id: &str,
        event_time_ms: i64,
        detail: EventDetail,
    ) -> Self {
        Event {
            event_id: event_id.to_string(),
            vehicle_id: vehicle_id.to_string(),
            user_id: user_id.to_string(),
            event_time: iso_millis(event_time_ms),
            detail,
        }
    }

    /// `DIAGNOSTIC_TROUBLE_CODES` or `DIAGNOSTIC_SYSTEM_ALERTS`.
    pub fn event_type(&self) -> &'static str {
        match self.detail {
            EventDetail::TroubleCodes { .. } => "DIAGNOSTIC_TROUBLE_CODES",
            EventDetail::SystemAlerts { .. } => "DIAGNOSTIC_SYSTEM_ALERTS",
        }
    }
}

/// `{"events":[…]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventData {
    pub events: Vec<Event>,
}

/// The v3.0 envelope: `{"version":"3.0","webhookId","deliveryId","deliveryTime","mode",
/// "type":"EVENT_DELIVERY","data":{"events"}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventDelivery {
    pub version: String,
    pub webhook_id: String,
    pub delivery_id: String,
    /// ISO 8601 with milliseconds.
    pub delivery_time: String,
    /// `live`, `simulated` or `test`.
    pub mode: String,
    #[serde(rename = "type")]
    pub delivery_type: String,
    pub data: EventData,
}

/// A v3.0 `EVENT_DELIVERY` body.
pub fn event_delivery(
    webhook_id: &str,
    delivery_id: &str,
    delivery_time_ms: i64,
    mode: &str,
    events: &[Event],
) -> String {
    to_compact(&EventDelivery {
        version: "3.0".into(),
        webhook_id: webhook_id.to_string(),
        delivery_id: delivery_id.to_string(),
        delivery_time: iso_millis(delivery_time_ms),
        mode: mode.to_string(),
        delivery_type: "EVENT_DELIVERY".into(),
        data: EventData {
            events: events.to_vec(),
        },
    })
}

/// The v3 signal resource: `{"id","type":"signal","attributes":{"code","name","group",
/// "status":{"value":"SUCCESS"},"body"},"meta":{"retrievedAt","oemUpdatedAt"},"links":{"self"}}`.
/// `oemUpdatedAt` is `null` when unknown.
pub fn signal_resource(value: &SignalValue, self_link: &str) -> Value {
    let (name, group) = catalog::name_group(&value.code);
    json!({
        "id": value.code,
        "type": "signal",
        "attributes": {
            "code": value.code,
            "name": name,
            "group": group,
            "status": {"value": "SUCCESS"},
            "body": canonical(&value.body),
        },
        "meta": {"retrievedAt": value.retrieved_at, "oemUpdatedAt": value.oem_updated_at},
        "links": {"self": self_link},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const EVENT_MS: i64 = 1_725_547_680_000; // 2024-09-05T14:48:00.000Z

    #[test]
    fn trouble_codes_match_the_spec_example() {
        let event = Event::trouble_codes(
            "evt_1",
            "veh_1",
            "usr_1",
            EVENT_MS,
            vec![TroubleCode {
                code: "P302D".into(),
                timestamp: "2024-09-05T14:48:00.000Z".into(),
            }],
        );
        let body = event_delivery(
            "wh_1",
            "dlv_1",
            EVENT_MS + 120_000,
            "live",
            std::slice::from_ref(&event),
        );
        assert_eq!(
            body,
            concat!(
                r#"{"version":"3.0","webhookId":"wh_1","deliveryId":"dlv_1","deliveryTime":"2024-09-05T14:50:00.000Z","mode":"live","type":"EVENT_DELIVERY","data":{"events":["#,
                r#"{"eventId":"evt_1","vehicleId":"veh_1","userId":"usr_1","eventTime":"2024-09-05T14:48:00.000Z","eventType":"DIAGNOSTIC_TROUBLE_CODES","#,
                r#""codes":[{"code":"P302D","timestamp":"2024-09-05T14:48:00.000Z"}]}]}}"#
            )
        );
        let parsed: EventDelivery = serde_json::from_str(&body).unwrap();
        assert_eq!(parsed.data.events, vec![event]);
        assert_eq!(
            parsed.data.events[0].event_type(),
            "DIAGNOSTIC_TROUBLE_CODES"
        );
    }

    #[test]
    fn system_alerts_match_the_spec_example() {
        let event = Event::system_alerts(
            "evt_2",
            "veh_1",
            "usr_1",
            EVENT_MS,
            vec![SystemAlert {
                system_id: "SYSTEM_TPMS".into(),
                status: "ALERT".into(),
                description: Some("Left rear tire sensor battery low".into()),
            }],
        );
        assert_eq!(
            serde_json::to_string(&event).unwrap(),
            concat!(
                r#"{"eventId":"evt_2","vehicleId":"veh_1","userId":"usr_1","eventTime":"2024-09-05T14:48:00.000Z","eventType":"DIAGNOSTIC_SYSTEM_ALERTS","#,
                r#""alerts":[{"systemId":"SYSTEM_TPMS","status":"ALERT","description":"Left rear tire sensor battery low"}]}"#
            )
        );
        let back: Event = serde_json::from_str(&serde_json::to_string(&event).unwrap()).unwrap();
        assert_eq!(back, event);
    }

    #[test]
    fn an_empty_code_list_is_written_when_the_last_code_clears() {
        let event = Event::trouble_codes("e", "v", "u", EVENT_MS, vec![]);
        assert!(serde_json::to_string(&event)
            .unwrap()
            .ends_with(r#""eventType":"DIAGNOSTIC_TROUBLE_CODES","codes":[]}"#));
    }

    #[test]
    fn signal_resource_matches_the_spec_shape() {
        let value = SignalValue {
            code: "tractionbattery-stateofcharge".into(),
            body: json!({"unit":"percent","value":78.0}),
            oem_updated_at: Some(1_731_940_328_000),
            retrieved_at: 1_731_940_330_000,
        };
        let link = "/v3/vehicles/veh_1/signals/tractionbattery-stateofcharge";
        assert_eq!(
            serde_json::to_string(&signal_resource(&value, link)).unwrap(),
            concat!(
                r#"{"id":"tractionbattery-stateofcharge","type":"signal","attributes":{"code":"tractionbattery-stateofcharge","#,
                r#""name":"StateOfCharge","group":"TractionBattery","status":{"value":"SUCCESS"},"body":{"unit":"percent","value":78}},"#,
                r#""meta":{"retrievedAt":1731940330000,"oemUpdatedAt":1731940328000},"#,
                r#""links":{"self":"/v3/vehicles/veh_1/signals/tractionbattery-stateofcharge"}}"#
            )
        );
    }
}
