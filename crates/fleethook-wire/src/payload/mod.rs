//! Webhook bodies of every generation, as compact JSON strings with Smartcar's key order
//! (SPEC section 5): [`v2`] (verify, scheduled, dynamic), [`v3`] (diagnostics events, signal
//! resources), [`v4`] (vehicle state and errors). Each builder serializes structs whose field
//! order is the key order, so a body re-serialized by JavaScript is byte-identical.

pub mod v2;
pub mod v3;
pub mod v4;

use serde_json::Value;

use crate::time::iso_millis;

/// Puts a fresh delivery id and time into a stored body for one HTTP attempt.
///
/// - v4 (a top-level `meta` with `deliveryId`): `meta.deliveryId` and `meta.deliveredAt`
///   (epoch ms);
/// - v3 (top-level `"version":"3.0"`): `deliveryId` and `deliveryTime` (ISO 8601);
/// - anything else (v2 carries no delivery id): the body unchanged.
///
/// Every other key keeps its place and every value its text.
pub fn stamp_attempt(
    body: &str,
    delivery_id: &str,
    delivered_at_ms: i64,
) -> Result<String, serde_json::Error> {
    if let Some(stamped) = stamp_v4_envelope(body, delivery_id, delivered_at_ms) {
        return Ok(stamped);
    }
    // v2 bodies are by far the largest (a scheduled body carries up to `maxPayloadBytes` of
    // vehicles) and get nothing: they start with their version, so skip parsing them.
    if body.starts_with(r#"{"version":"2.0","#) {
        return Ok(body.to_string());
    }
    let mut parsed: Value = serde_json::from_str(body)?;
    let Some(obj) = parsed.as_object_mut() else {
        return Ok(body.to_string());
    };
    if let Some(Value::Object(meta)) = obj.get_mut("meta") {
        if meta.contains_key("deliveryId") {
            meta.insert("deliveryId".into(), Value::from(delivery_id));
            meta.insert("deliveredAt".into(), Value::from(delivered_at_ms));
            return serde_json::to_string(&parsed);
        }
    }
    if obj.get("version").and_then(Value::as_str) == Some("3.0") {
        obj.insert("deliveryId".into(), Value::from(delivery_id));
        obj.insert(
            "deliveryTime".into(),
            Value::from(iso_millis(delivered_at_ms)),
        );
        return serde_json::to_string(&parsed);
    }
    Ok(body.to_string())
}

/// The v4 stamp without parsing the body: every attempt of a delivery used to parse and
/// re-serialize its whole body, a tenth of the dispatcher's CPU for vehicleState payloads.
///
/// Applies only to the shape [`v4`] renders: the envelope's `meta` is the body's last key and
/// opens with `"version":"4.0","webhookId"`, and holds `"deliveryId":"…","deliveredAt":N`
/// side by side. The last such `meta` is the envelope's (nested objects all come before it),
/// and the key patterns cannot occur inside a JSON string, whose quotes are escaped. Anything
/// else returns `None` and takes the parsing road.
fn stamp_v4_envelope(body: &str, delivery_id: &str, delivered_at_ms: i64) -> Option<String> {
    const META: &str = r#""meta":{"version":"4.0","webhookId":"#;
    const ID: &str = r#""deliveryId":""#;
    const AT: &str = r#"","deliveredAt":"#;
    if !body.ends_with("}}") || delivery_id.contains(['"', '\\']) {
        return None;
    }
    let meta = body.rfind(META)?;
    let id_start = meta + body[meta..].find(ID)? + ID.len();
    let id_end = id_start + body[id_start..].find('"')?;
    if body[id_start..id_end].contains('\\') || !body[id_end..].starts_with(AT) {
        return None;
    }
    let at_start = id_end + AT.len();
    let digits = body[at_start..]
        .bytes()
        .take_while(|b| b.is_ascii_digit() || *b == b'-')
        .count();
    if digits == 0 || !matches!(body.as_bytes().get(at_start + digits), Some(b',' | b'}')) {
        return None;
    }
    let mut stamped = String::with_capacity(body.len() + delivery_id.len() + 4);
    stamped.push_str(&body[..id_start]);
    stamped.push_str(delivery_id);
    stamped.push_str(AT);
    stamped.push_str(&delivered_at_ms.to_string());
    stamped.push_str(&body[at_start + digits..]);
    Some(stamped)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::tests::assert_js_round_trip;
    use crate::samples::{sample_signals, sample_vehicle};
    use crate::units::UnitSystem;
    use crate::v2::{render_endpoint, V2Path, VehicleInfo};

    const NOW: i64 = 1_731_940_331_000;

    #[test]
    fn v4_bodies_get_a_new_delivery_id_and_time_in_place() {
        let body = v4::verify("evt_1", "wh_1", "hook", "dlv_old", 1, "ch");
        let stamped = stamp_attempt(&body, "dlv_new", 1_761_896_351_529).unwrap();
        assert_eq!(
            stamped,
            r#"{"eventId":"evt_1","eventType":"VERIFY","data":{"challenge":"ch"},"meta":{"version":"4.0","webhookId":"wh_1","webhookName":"hook","deliveryId":"dlv_new","deliveredAt":1761896351529}}"#
        );
    }

    #[test]
    fn the_v4_fast_stamp_equals_parsing_and_reserializing() {
        // A webhook name and a signal body that mimic the envelope's keys.
        let tricky = r#"x","deliveryId":"dlv_fake","deliveredAt":1,"y":""#;
        let bodies = [
            v4::verify("evt_1", "wh_1", tricky, "dlv_old", 1, "ch"),
            v4::verify("evt_1", "wh_1", "hook", "dlv_old", -5, "ch"),
            r#"{"data":{"meta":{"version":"4.0","webhookId":"a","deliveryId":"n","deliveredAt":2}},"meta":{"version":"4.0","webhookId":"w","webhookName":"h","deliveryId":"d","deliveredAt":3,"mode":"LIVE"}}"#.to_string(),
        ];
        for body in bodies {
            let fast = stamp_v4_envelope(&body, "dlv_new", 1_761_896_351_529)
                .expect("the v4 shape takes the fast road");
            let parsed: Value = serde_json::from_str(&body).unwrap();
            let mut slow = parsed.clone();
            slow["meta"]["deliveryId"] = Value::from("dlv_new");
            slow["meta"]["deliveredAt"] = Value::from(1_761_896_351_529_i64);
            assert_eq!(fast, serde_json::to_string(&slow).unwrap(), "{body}");
        }
        // Not the v4 envelope: the parsing road decides.
        assert_eq!(stamp_v4_envelope(r#"{"version":"3.0"}"#, "d", 1), None);
        assert_eq!(stamp_v4_envelope(&v2::verify("wh_1", "ch"), "d", 1), None);
        let odd =
            r#"{"meta":{"version":"4.0","webhookId":"w","deliveryId":"d","deliveredAt":"x"}}"#;
        assert_eq!(stamp_v4_envelope(odd, "d", 1), None);
    }

    #[test]
    fn v3_bodies_get_a_new_delivery_id_and_iso_time_in_place() {
        let body = v3::event_delivery("wh_1", "dlv_old", 0, "live", &[]);
        let stamped = stamp_attempt(&body, "dlv_new", 1_725_547_800_000).unwrap();
        assert_eq!(
            stamped,
            r#"{"version":"3.0","webhookId":"wh_1","deliveryId":"dlv_new","deliveryTime":"2024-09-05T14:50:00.000Z","mode":"live","type":"EVENT_DELIVERY","data":{"events":[]}}"#
        );
    }

    #[test]
    fn v2_bodies_and_foreign_json_are_unchanged() {
        let body = v2::verify("wh_1", "ch");
        assert_eq!(stamp_attempt(&body, "dlv", NOW).unwrap(), body);
        let scheduled = v2::vehicles_body("wh_1", "scheduled", "live", &[]);
        assert!(
            scheduled.starts_with(r#"{"version":"2.0","#),
            "the fast path sees it"
        );
        assert_eq!(stamp_attempt(&scheduled, "dlv", NOW).unwrap(), scheduled);
        assert_eq!(stamp_attempt("[1,2]", "dlv", NOW).unwrap(), "[1,2]");
        // A nested deliveryId (say in a signal body) is not the envelope's.
        let nested = r#"{"data":{"meta":{"deliveryId":"x"}},"version":"2.0"}"#;
        assert_eq!(stamp_attempt(nested, "dlv", NOW).unwrap(), nested);
        assert!(stamp_attempt("not json", "dlv", NOW).is_err());
    }

    #[test]
    fn stamping_a_full_vehicle_state_changes_only_the_two_fields() {
        let signals = sample_signals(NOW);
        let items: Vec<Value> = crate::catalog::all()
            .iter()
            .map(|d| v4::signal_item(d.code, signals.get(d.code), None))
            .collect();
        let body = v4::vehicle_state(
            "evt_1",
            "veh_1",
            &v4::V4User { id: "usr_1".into() },
            &v4::V4Vehicle {
                id: "veh_1".into(),
                make: "M".into(),
                model: "X".into(),
                year: 2024,
            },
            items,
            vec![v4::first_delivery_trigger()],
            "wh_1",
            "hook",
            "dlv_aaaa",
            1_111_111_111_111,
            "LIVE",
        );
        let stamped = stamp_attempt(&body, "dlv_bbbb", 2_222_222_222_222).unwrap();
        assert_eq!(
            stamped,
            body.replace("dlv_aaaa", "dlv_bbbb")
                .replace("1111111111111", "2222222222222")
        );
        assert_js_round_trip(&stamped);
    }

    /// Every builder's output is compact JSON that re-serializes to itself with numbers written
    /// as JavaScript writes them, over sample data for every signal and path.
    #[test]
    fn every_builder_survives_a_javascript_round_trip() {
        let sample = sample_vehicle();
        let signals = sample_signals(NOW);
        let vehicle = VehicleInfo {
            id: "veh_1",
            make: &sample.make,
            model: &sample.model,
            year: sample.year,
            vin: Some(&sample.vin),
        };
        let mut bodies = vec![v2::verify("wh_1", "ch\"\u{1}\u{2028}é")];
        for units in [UnitSystem::Metric, UnitSystem::Imperial] {
            let data = V2Path::all()
                .iter()
                .map(|p| render_endpoint(*p, &vehicle, &signals, units, "req"))
                .collect();
            let vehicles = [v2::V2VehicleData {
                vehicle_id: "veh_1".into(),
                request_id: "req".into(),
                data,
            }];
            bodies.push(v2::vehicles_body("wh_1", "scheduled", "live", &vehicles));
        }
        let events = [
            v3::Event::trouble_codes(
                "e1",
                "veh_1",
                "usr_1",
                NOW,
                vec![v3::TroubleCode {
                    code: "P302D".into(),
                    timestamp: "2024-09-05T14:48:00.000Z".into(),
                }],
            ),
            v3::Event::system_alerts(
                "e2",
                "veh_1",
                "usr_1",
                NOW,
                vec![v3::SystemAlert {
                    system_id: "SYSTEM_TPMS".into(),
                    status: "ALERT".into(),
                    description: None,
                }],
            ),
        ];
        bodies.push(v3::event_delivery("wh_1", "dlv", NOW, "live", &events));
        for d in crate::catalog::all() {
            let resource = v3::signal_resource(&signals[d.code], "/v3/vehicles/veh_1/signals/x");
            bodies.push(serde_json::to_string(&resource).unwrap());
        }
        let items: Vec<Value> = crate::catalog::all()
            .iter()
            .map(|d| v4::signal_item(d.code, signals.get(d.code), None))
            .collect();
        let user = v4::V4User { id: "usr_1".into() };
        let v4_vehicle = v4::V4Vehicle {
            id: "veh_1".into(),
            make: sample.make.clone(),
            model: sample.model.clone(),
            year: sample.year,
        };
        bodies.push(v4::vehicle_state(
            "e",
            "veh_1",
            &user,
            &v4_vehicle,
            items,
            vec![v4::first_delivery_trigger()],
            "wh",
            "n",
            "d",
            NOW,
            "TEST",
        ));
        let error = v4::V4Error::new(
            "COMPATIBILITY",
            "VEHICLE_NOT_CAPABLE",
            "ERROR",
            "nope",
            &["location-isathome"],
        );
        bodies.push(v4::vehicle_error(
            "e",
            "veh_1",
            &user,
            &v4_vehicle,
            &[error],
            "wh",
            "n",
            "d",
            NOW,
            "LIVE",
        ));
        bodies.push(v4::verify("e", "wh", "n", "d", NOW, "ch"));
        for body in &bodies {
            assert!(
                !body.contains(": ") && !body.contains('\n'),
                "not compact: {body}"
            );
            assert_js_round_trip(body);
        }
    }
}
