//! v2.0 bodies: the verification challenge of every v2.0-enveloped kind (scheduled, dynamic,
//! eventBased) and the `vehicles` payload of scheduled and dynamic webhooks.

use serde::{Deserialize, Serialize};

use crate::json::to_compact;
use crate::v2::EndpointResponse;

/// One vehicle of a scheduled or dynamic payload: `{"vehicleId","requestId","data"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct V2VehicleData {
    pub vehicle_id: String,
    pub request_id: String,
    /// One item per configured path, errors included.
    pub data: Vec<EndpointResponse>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Envelope<'a, P: Serialize> {
    version: &'static str,
    webhook_id: &'a str,
    event_name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    mode: Option<&'a str>,
    payload: P,
}

#[derive(Serialize)]
struct Challenge<'a> {
    challenge: &'a str,
}

#[derive(Serialize)]
struct Vehicles<'a> {
    vehicles: &'a [V2VehicleData],
}

/// `{"version":"2.0","webhookId","eventName":"verify","payload":{"challenge"}}`.
pub fn verify(webhook_id: &str, challenge: &str) -> String {
    to_compact(&Envelope {
        version: "2.0",
        webhook_id,
        event_name: "verify",
        mode: None,
        payload: Challenge { challenge },
    })
}

/// `{"version":"2.0","webhookId","eventName","mode","payload":{"vehicles":[…]}}`; `event_name`
/// is `scheduled` or `dynamic`, `mode` is `live`, `simulated` or `test`.
pub fn vehicles_body(
    webhook_id: &str,
    event_name: &str,
    mode: &str,
    vehicles: &[V2VehicleData],
) -> String {
    to_compact(&Envelope {
        version: "2.0",
        webhook_id,
        event_name,
        mode: Some(mode),
        payload: Vehicles { vehicles },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::SmartcarError;
    use serde_json::{json, Map, Value};

    #[test]
    fn verify_matches_the_spec_envelope() {
        assert_eq!(
            verify("wh_1", "8c0d1f"),
            r#"{"version":"2.0","webhookId":"wh_1","eventName":"verify","payload":{"challenge":"8c0d1f"}}"#
        );
    }

    #[test]
    fn scheduled_matches_the_spec_example() {
        let mut headers = Map::new();
        headers.insert("sc-data-age".into(), json!("2024-09-20T21:58:06.000Z"));
        headers.insert("sc-unit-system".into(), json!("metric"));
        let ok = EndpointResponse {
            path: "/battery".into(),
            code: 200,
            body: json!({"range":283.2,"percentRemaining":0.58}),
            headers,
        };
        let err = SmartcarError::vehicle_not_capable(
            "req_1",
            "The vehicle is incapable of performing your request.",
        );
        let failed = EndpointResponse {
            path: "/battery".into(),
            code: 501,
            body: serde_json::to_value(&err).unwrap(),
            headers: Map::new(),
        };
        let data = V2VehicleData {
            vehicle_id: "veh_1".into(),
            request_id: "req_1".into(),
            data: vec![ok, failed],
        };
        let body = vehicles_body("wh_1", "scheduled", "live", std::slice::from_ref(&data));
        assert_eq!(
            body,
            concat!(
                r#"{"version":"2.0","webhookId":"wh_1","eventName":"scheduled","mode":"live","payload":{"vehicles":["#,
                r#"{"vehicleId":"veh_1","requestId":"req_1","data":["#,
                r#"{"path":"/battery","code":200,"body":{"range":283.2,"percentRemaining":0.58},"headers":{"sc-data-age":"2024-09-20T21:58:06.000Z","sc-unit-system":"metric"}},"#,
                r#"{"path":"/battery","code":501,"body":{"type":"COMPATIBILITY","code":"VEHICLE_NOT_CAPABLE","description":"The vehicle is incapable of performing your request.","#,
                r#""docURL":"https://smartcar.com/docs/errors/api-errors/compatibility-errors#vehicle-not-capable","statusCode":501,"requestId":"req_1","resolution":{"type":null}},"headers":{}}]}]}}"#
            )
        );
        // Receivers can read it back.
        let parsed: Value = serde_json::from_str(&body).unwrap();
        let back: V2VehicleData =
            serde_json::from_value(parsed["payload"]["vehicles"][0].clone()).unwrap();
        assert_eq!(back, data);
    }
}
