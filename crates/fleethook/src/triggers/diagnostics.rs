//! eventBased webhooks: turns what one ingest changed into a v3.0 `EVENT_DELIVERY`.
//!
//! Pure: the caller passes the webhook, the vehicle, the ingest's change set and the platform
//! time; nothing here reads the store or the clock. The body is built by
//! `fleethook_wire::payload::v3`; this module only decides whether there is an event and what
//! it carries (SPEC sections 4 and 5):
//! - `DIAGNOSTIC_TROUBLE_CODES` when the *set* of active DTCs changes; the event carries the
//!   full set after the change (empty when the last code cleared);
//! - `DIAGNOSTIC_SYSTEM_ALERTS` when a `diagnostics-<system>` signal goes OK→ALERT or back;
//!   the event lists every system whose status changed in the ingest.

use std::collections::BTreeSet;

use fleethook_wire::catalog;
use fleethook_wire::payload::v3::{self, SystemAlert, TroubleCode};
use fleethook_wire::time::{iso_millis, parse_iso_millis};
use serde_json::Value;

use crate::clock::Millis;
use crate::ids::new_id;
use crate::kinds::{DiagnosticEvent, KindConfig};
use crate::model::{DeliveryPurpose, NewDelivery, Vehicle, VehicleMode, Webhook};
use crate::store::IngestApplied;

/// The signal that carries the active DTCs: `{"values":[{"code","timestamp"}]}`.
const DTC_LIST: &str = "diagnostics-dtclist";

/// The v3.0 delivery an ingest causes for an eventBased webhook, or `None` when nothing in
/// `applied` is an event of the kind the webhook listens to (or the webhook is not
/// eventBased). `now` is the event time and the first attempt's due time.
pub fn on_change(
    webhook: &Webhook,
    vehicle: &Vehicle,
    applied: &IngestApplied,
    now: Millis,
) -> Option<NewDelivery> {
    let Ok(KindConfig::EventBased { event }) =
        KindConfig::from_stored(webhook.kind, &webhook.config)
    else {
        return None;
    };
    let event_id = new_id();
    let event = match event {
        DiagnosticEvent::DiagnosticTroubleCodes => v3::Event::trouble_codes(
            &event_id,
            &vehicle.id,
            &vehicle.user_id,
            now,
            changed_trouble_codes(applied)?,
        ),
        DiagnosticEvent::DiagnosticSystemAlerts => {
            let alerts = changed_system_alerts(applied);
            if alerts.is_empty() {
                return None;
            }
            v3::Event::system_alerts(&event_id, &vehicle.id, &vehicle.user_id, now, alerts)
        }
    };
    let event_type = event.event_type();
    // The deliveryId written here is a placeholder: the dispatcher stamps a fresh one (and the
    // deliveryTime) into the stored body for every attempt.
    let body = v3::event_delivery(
        &webhook.id,
        &new_id(),
        now,
        v3_mode(vehicle.mode),
        std::slice::from_ref(&event),
    );
    Some(NewDelivery {
        id: new_id(),
        app_id: webhook.app_id.clone(),
        webhook_id: webhook.id.clone(),
        event_id,
        purpose: DeliveryPurpose::Event,
        target_uri: webhook.callback_uri.clone(),
        body,
        event_type: event_type.to_string(),
        vehicle_ids: vec![vehicle.id.clone()],
        next_attempt_at: Some(now),
        created_at: now,
    })
}

/// v3 modes follow v2: `live` or `simulated` for vehicles (`test` is for test payloads only).
fn v3_mode(mode: VehicleMode) -> &'static str {
    match mode {
        VehicleMode::Live => "live",
        VehicleMode::Simulated => "simulated",
    }
}

/// The full active set after the ingest, if the ingest changed which codes are active.
/// Reordering the list or re-stamping a code that stays active is not a change: receivers
/// only care about codes appearing or clearing.
fn changed_trouble_codes(applied: &IngestApplied) -> Option<Vec<TroubleCode>> {
    let change = applied.changes.iter().find(|c| c.code == DTC_LIST)?;
    let before = active_codes(change.previous.as_ref());
    let after = active_codes(Some(&change.current));
    let code_set = |codes: &[TroubleCode]| {
        codes
            .iter()
            .map(|c| c.code.clone())
            .collect::<BTreeSet<_>>()
    };
    (code_set(&before) != code_set(&after)).then_some(after)
}

/// The codes of a DTC list body, each once (first occurrence wins), in the body's order, with
/// timestamps rewritten as ISO 8601 UTC with milliseconds. Sources may send times without an
/// offset or milliseconds; a time that does not parse is passed on as given rather than
/// dropping the code.
fn active_codes(body: Option<&Value>) -> Vec<TroubleCode> {
    let items = body
        .and_then(|b| b.get("values"))
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let mut codes: Vec<TroubleCode> = Vec::with_capacity(items.len());
    for item in items {
        let Some(code) = item.get("code").and_then(Value::as_str) else {
            continue;
        };
        if codes.iter().any(|c| c.code == code) {
            continue;
        }
        let raw = item.get("timestamp").and_then(Value::as_str).unwrap_or("");
        let timestamp = parse_iso_millis(raw).map_or_else(|| raw.to_string(), iso_millis);
        codes.push(TroubleCode {
            code: code.to_string(),
            timestamp,
        });
    }
    codes
}

/// Every system whose status flipped between OK and ALERT in this ingest, in change order.
/// A system seen for the first time counts as having been OK, so a first ALERT is an event and
/// a first OK is not; a changed description with the same status is not an event.
fn changed_system_alerts(applied: &IngestApplied) -> Vec<SystemAlert> {
    applied
        .changes
        .iter()
        .filter_map(|change| {
            let system_id = catalog::lookup(&change.code)?.system_id()?;
            let status = status_of(&change.current)?;
            let previous = change.previous.as_ref().and_then(status_of).unwrap_or("OK");
            (status != previous).then(|| SystemAlert {
                system_id,
                status: status.to_string(),
                description: change
                    .current
                    .get("description")
                    .and_then(Value::as_str)
                    .map(str::to_string),
            })
        })
        .collect()
}

/// `OK` or `ALERT` from a system body; anything else is not a status we can report.
fn status_of(body: &Value) -> Option<&str> {
    body.get("status")
        .and_then(Value::as_str)
        .filter(|s| *s == "OK" || *s == "ALERT")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::WebhookKind;
    use crate::store::SignalChange;
    use crate::triggers::fixtures;
    use fleethook_wire::payload::v3::{EventDelivery, EventDetail};
    use serde_json::json;

    const NOW: Millis = 1_725_547_800_000; // 2024-09-05T14:50:00.000Z

    fn webhook(event: &str) -> Webhook {
        fixtures::webhook(
            WebhookKind::EventBased,
            "Diagnostics",
            "https://example.com/hook",
            json!({ "events": [event] }),
        )
    }

    fn vehicle(mode: VehicleMode) -> Vehicle {
        fixtures::vehicle(mode)
    }

    fn change(code: &str, previous: Option<Value>, current: Value) -> IngestApplied {
        IngestApplied {
            changes: vec![SignalChange {
                code: code.into(),
                previous,
                current,
            }],
            ..Default::default()
        }
    }

    fn dtcs(codes: &[(&str, &str)]) -> Value {
        json!({ "values": codes.iter().map(|(c, t)| json!({"code": c, "timestamp": t})).collect::<Vec<_>>() })
    }

    fn dtc_hook() -> Webhook {
        webhook("DIAGNOSTIC_TROUBLE_CODES")
    }

    fn alert_hook() -> Webhook {
        webhook("DIAGNOSTIC_SYSTEM_ALERTS")
    }

    /// Checks the delivery's envelope and returns its single event's detail.
    fn detail(d: &NewDelivery, event_type: &str) -> EventDetail {
        assert_eq!(d.event_type, event_type);
        assert_eq!(d.purpose, DeliveryPurpose::Event);
        assert_eq!(d.target_uri, "https://example.com/hook");
        assert_eq!(d.vehicle_ids, vec!["veh_1"]);
        assert_eq!((d.next_attempt_at, d.created_at), (Some(NOW), NOW));
        assert_ne!(d.id, d.event_id);
        // Compact, key order kept: a JavaScript-style round trip writes the same text.
        let value: Value = serde_json::from_str(&d.body).unwrap();
        assert_eq!(serde_json::to_string(&value).unwrap(), d.body);
        let keys: Vec<&str> = value
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            [
                "version",
                "webhookId",
                "deliveryId",
                "deliveryTime",
                "mode",
                "type",
                "data"
            ]
        );
        let event_keys: Vec<&str> = value["data"]["events"][0]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            &event_keys[..5],
            ["eventId", "vehicleId", "userId", "eventTime", "eventType"]
        );
        let parsed: EventDelivery = serde_json::from_str(&d.body).unwrap();
        assert_eq!(
            (parsed.version.as_str(), parsed.delivery_type.as_str()),
            ("3.0", "EVENT_DELIVERY")
        );
        assert_eq!(parsed.webhook_id, "wh_1");
        assert_eq!(parsed.delivery_time, "2024-09-05T14:50:00.000Z");
        assert_eq!(parsed.data.events.len(), 1);
        let event = &parsed.data.events[0];
        assert_eq!(event.event_id, d.event_id);
        assert_ne!(parsed.delivery_id, d.event_id);
        assert_eq!(
            (event.vehicle_id.as_str(), event.user_id.as_str()),
            ("veh_1", "usr_1")
        );
        assert_eq!(event.event_time, "2024-09-05T14:50:00.000Z");
        assert_eq!(event.event_type(), event_type);
        event.detail.clone()
    }

    fn codes(d: &NewDelivery) -> Vec<(String, String)> {
        match detail(d, "DIAGNOSTIC_TROUBLE_CODES") {
            EventDetail::TroubleCodes { codes } => {
                codes.into_iter().map(|c| (c.code, c.timestamp)).collect()
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    fn alerts(d: &NewDelivery) -> Vec<SystemAlert> {
        match detail(d, "DIAGNOSTIC_SYSTEM_ALERTS") {
            EventDetail::SystemAlerts { alerts } => alerts,
            other => panic!("unexpected {other:?}"),
        }
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(c, t)| (c.to_string(), t.to_string()))
            .collect()
    }

    #[test]
    fn an_added_dtc_sends_the_full_active_set() {
        let applied = change(
            DTC_LIST,
            Some(dtcs(&[("P0300", "2024-09-01T08:00:00.000Z")])),
            // Timestamps without offset or milliseconds are normalised.
            dtcs(&[
                ("P0300", "2024-09-01T08:00:00Z"),
                ("P302D", "2024-09-05T14:48:00"),
            ]),
        );
        let d = on_change(&dtc_hook(), &vehicle(VehicleMode::Live), &applied, NOW).unwrap();
        assert_eq!(
            codes(&d),
            pairs(&[
                ("P0300", "2024-09-01T08:00:00.000Z"),
                ("P302D", "2024-09-05T14:48:00.000Z")
            ])
        );
        assert!(d.body.contains(r#""mode":"live""#));
    }

    #[test]
    fn the_first_dtc_of_a_vehicle_without_a_list_is_an_event() {
        let applied = change(
            DTC_LIST,
            None,
            dtcs(&[("P302D", "2024-09-05T14:48:00.000Z")]),
        );
        let d = on_change(&dtc_hook(), &vehicle(VehicleMode::Live), &applied, NOW).unwrap();
        assert_eq!(codes(&d), pairs(&[("P302D", "2024-09-05T14:48:00.000Z")]));
        // An empty first list is no change from nothing.
        let empty = change(DTC_LIST, None, dtcs(&[]));
        assert!(on_change(&dtc_hook(), &vehicle(VehicleMode::Live), &empty, NOW).is_none());
    }

    #[test]
    fn a_cleared_dtc_sends_the_remaining_set() {
        let applied = change(
            DTC_LIST,
            Some(dtcs(&[
                ("P0300", "2024-09-01T08:00:00.000Z"),
                ("P302D", "2024-09-05T14:48:00.000Z"),
            ])),
            dtcs(&[("P302D", "2024-09-05T14:48:00.000Z")]),
        );
        let d = on_change(&dtc_hook(), &vehicle(VehicleMode::Simulated), &applied, NOW).unwrap();
        assert_eq!(codes(&d), pairs(&[("P302D", "2024-09-05T14:48:00.000Z")]));
        assert!(d.body.contains(r#""mode":"simulated""#));
    }

    #[test]
    fn the_last_cleared_dtc_sends_an_empty_list() {
        let applied = change(
            DTC_LIST,
            Some(dtcs(&[("P302D", "2024-09-05T14:48:00.000Z")])),
            dtcs(&[]),
        );
        let d = on_change(&dtc_hook(), &vehicle(VehicleMode::Live), &applied, NOW).unwrap();
        assert!(codes(&d).is_empty());
        assert!(d
            .body
            .contains(r#""eventType":"DIAGNOSTIC_TROUBLE_CODES","codes":[]}"#));
    }

    #[test]
    fn reordered_or_restamped_dtcs_are_not_an_event() {
        let before = dtcs(&[
            ("P0300", "2024-09-01T08:00:00.000Z"),
            ("P302D", "2024-09-05T14:48:00.000Z"),
        ]);
        let reordered = dtcs(&[
            ("P302D", "2024-09-05T14:48:00.000Z"),
            ("P0300", "2024-09-01T08:00:00.000Z"),
        ]);
        let restamped = dtcs(&[
            ("P0300", "2024-09-02T09:00:00.000Z"),
            ("P302D", "2024-09-05T14:48:00.000Z"),
        ]);
        for after in [reordered, restamped] {
            let applied = change(DTC_LIST, Some(before.clone()), after);
            assert!(on_change(&dtc_hook(), &vehicle(VehicleMode::Live), &applied, NOW).is_none());
        }
    }

    #[test]
    fn a_dtc_webhook_ignores_system_changes_and_an_alert_webhook_ignores_dtcs() {
        let system = change(
            "diagnostics-abs",
            Some(json!({"status":"OK"})),
            json!({"status":"ALERT"}),
        );
        assert!(on_change(&dtc_hook(), &vehicle(VehicleMode::Live), &system, NOW).is_none());
        let dtc = change(
            DTC_LIST,
            None,
            dtcs(&[("P302D", "2024-09-05T14:48:00.000Z")]),
        );
        assert!(on_change(&alert_hook(), &vehicle(VehicleMode::Live), &dtc, NOW).is_none());
    }

    #[test]
    fn ok_to_alert_and_back_send_alerts_with_system_ids() {
        let applied = IngestApplied {
            changes: vec![
                SignalChange {
                    code: "diagnostics-tirepressuremonitoring".into(),
                    previous: Some(json!({"status":"OK","description":null})),
                    current: json!({"status":"ALERT","description":"Left rear tire sensor battery low"}),
                },
                SignalChange {
                    code: "diagnostics-abs".into(),
                    previous: Some(json!({"status":"ALERT","description":"ABS fault"})),
                    current: json!({"status":"OK"}),
                },
                // Not a system signal: ignored.
                SignalChange {
                    code: "tractionbattery-stateofcharge".into(),
                    previous: None,
                    current: json!({"unit":"percent","value":50}),
                },
            ],
            ..Default::default()
        };
        let d = on_change(&alert_hook(), &vehicle(VehicleMode::Live), &applied, NOW).unwrap();
        assert_eq!(
            alerts(&d),
            vec![
                SystemAlert {
                    system_id: "SYSTEM_TPMS".into(),
                    status: "ALERT".into(),
                    description: Some("Left rear tire sensor battery low".into()),
                },
                SystemAlert {
                    system_id: "SYSTEM_ABS".into(),
                    status: "OK".into(),
                    description: None,
                },
            ]
        );
        assert!(d.body.contains(r#""alerts":[{"systemId":"SYSTEM_TPMS","status":"ALERT","description":"Left rear tire sensor battery low"},{"systemId":"SYSTEM_ABS","status":"OK","description":null}]"#));
    }

    #[test]
    fn a_first_alert_is_an_event_and_a_first_ok_is_not() {
        let first_alert = change(
            "diagnostics-airbag",
            None,
            json!({"status":"ALERT","description":"Airbag light on"}),
        );
        let d = on_change(
            &alert_hook(),
            &vehicle(VehicleMode::Live),
            &first_alert,
            NOW,
        )
        .unwrap();
        assert_eq!(alerts(&d)[0].system_id, "SYSTEM_AIRBAG");
        let first_ok = change("diagnostics-airbag", None, json!({"status":"OK"}));
        assert!(on_change(&alert_hook(), &vehicle(VehicleMode::Live), &first_ok, NOW).is_none());
    }

    #[test]
    fn a_description_only_change_is_not_an_alert() {
        let applied = change(
            "diagnostics-tirepressuremonitoring",
            Some(json!({"status":"ALERT","description":"Left rear tire sensor battery low"})),
            json!({"status":"ALERT","description":"Right rear tire sensor battery low"}),
        );
        assert!(on_change(&alert_hook(), &vehicle(VehicleMode::Live), &applied, NOW).is_none());
    }

    #[test]
    fn nothing_qualifies_for_other_kinds_or_empty_ingests() {
        assert!(on_change(
            &dtc_hook(),
            &vehicle(VehicleMode::Live),
            &IngestApplied::default(),
            NOW
        )
        .is_none());
        let mut not_event_based = dtc_hook();
        not_event_based.kind = WebhookKind::Dynamic;
        let dtc = change(
            DTC_LIST,
            None,
            dtcs(&[("P302D", "2024-09-05T14:48:00.000Z")]),
        );
        assert!(on_change(&not_event_based, &vehicle(VehicleMode::Live), &dtc, NOW).is_none());
    }

    #[test]
    fn every_delivery_gets_fresh_ids() {
        let dtc = change(
            DTC_LIST,
            None,
            dtcs(&[("P302D", "2024-09-05T14:48:00.000Z")]),
        );
        let a = on_change(&dtc_hook(), &vehicle(VehicleMode::Live), &dtc, NOW).unwrap();
        let b = on_change(&dtc_hook(), &vehicle(VehicleMode::Live), &dtc, NOW).unwrap();
        assert_ne!(a.id, b.id);
        assert_ne!(a.event_id, b.event_id);
    }
}
