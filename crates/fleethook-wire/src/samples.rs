//! A believable vehicle with a value for every catalog signal, for test payloads and demos.
//!
//! It is a plug-in hybrid so that every signal and every v2.0 path (the battery and the fuel
//! tank, the oil) has a value that makes sense together: plugged in at home, charging.

use std::collections::HashMap;

use serde_json::{json, Value};

use crate::catalog::{self, BodyKind, SignalDef};
use crate::signal::SignalValue;
use crate::time::iso_millis;

/// The sample vehicle's record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SampleVehicle {
    pub make: String,
    pub model: String,
    pub year: i32,
    pub vin: String,
}

/// The vehicle the samples describe.
pub fn sample_vehicle() -> SampleVehicle {
    SampleVehicle {
        make: "TOYOTA".into(),
        model: "RAV4 Prime".into(),
        year: 2023,
        // A well-formed VIN, check digit included.
        vin: "JTMEB3FV3PD104215".into(),
    }
}

/// A value for every catalog signal, updated by the vehicle 30 s before `now_ms` and
/// retrieved at `now_ms`.
pub fn sample_signals(now_ms: i64) -> HashMap<String, SignalValue> {
    catalog::all()
        .iter()
        .map(|d| {
            let value = SignalValue {
                code: d.code.to_string(),
                body: sample_body(d, now_ms),
                oem_updated_at: Some(now_ms - 30_000),
                retrieved_at: now_ms,
            };
            (d.code.to_string(), value)
        })
        .collect()
}

fn sample_body(d: &SignalDef, now_ms: i64) -> Value {
    let unit_value = |value: Value| json!({"unit": d.unit, "value": value});
    let closed = json!({"isOpen": false, "isLocked": true});
    let grid = |fields: Value| {
        let mut values = Vec::new();
        for row in 0..2 {
            for column in 0..2 {
                let mut item = json!({"row": row, "column": column});
                if let (Some(item), Some(extra)) = (item.as_object_mut(), fields.as_object()) {
                    item.extend(extra.clone());
                }
                values.push(item);
            }
        }
        json!({"values": values, "rowCount": 2, "columnCount": 2})
    };
    match d.code {
        "charge-amperage" => unit_value(json!(27.5)),
        "charge-amperagemax" | "charge-amperagerequested" => unit_value(json!(32)),
        "charge-chargelimits" => {
            json!({"values": [{"type": "GLOBAL", "limit": 90, "condition": null}], "activeLimit": 90, "unit": "percent"})
        }
        "charge-chargeportstatuscolor" => json!({"value": "GREEN"}),
        "charge-chargerate" => unit_value(json!(32)),
        "charge-chargerecords" => json!({"values": [{
            "id": "rec_1",
            "cost": {"currency": "USD", "energyAmount": 2.14, "otherAmount": 0},
            "startTime": iso_millis(now_ms - 86_400_000),
            "endTime": iso_millis(now_ms - 86_400_000 + 9_000_000),
            "location": {"name": "Home", "address": "1 Market St, San Francisco, CA", "latitude": 37.7749, "longitude": -122.4194},
            "energyAdded": 14.6,
            "connectorType": "J1772",
            "isPublicCharger": false,
            "startStateOfCharge": 12,
            "endStateOfCharge": 90
        }]}),
        "charge-chargetimers" => json!({"values": [{
            "type": "SCHEDULE",
            "condition": null,
            "schedules": [{"start": "23:00", "end": "06:00", "days": ["MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY"]}],
            "departureTimers": [{"time": "07:30", "days": ["MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY"]}],
            "isOEMOptimizationEnabled": true
        }]}),
        "charge-chargerphases" => unit_value(json!(1)),
        "charge-chargingconnectortype" => json!({"value": "J1772"}),
        "charge-detailedchargingstatus" => json!({"value": "CHARGING"}),
        "charge-energyadded" => unit_value(json!(7.4)),
        "charge-fastchargertype" => json!({"value": "NONE"}),
        "charge-timetocomplete" => json!({"value": 45}),
        "charge-voltage" => unit_value(json!(240)),
        "charge-wattage" => unit_value(json!(6600)),
        "climate-externaltemperature" => unit_value(json!(18.5)),
        "climate-internaltemperature" => unit_value(json!(21)),
        "closure-doors" => grid(json!({"isOpen": false, "isLocked": true})),
        "closure-windows" => grid(json!({"isOpen": false})),
        "closure-enginecover" | "closure-sunroof" => json!({"isOpen": false}),
        "closure-fronttrunk" | "closure-reartrunk" | "closure-tailgate" => closed,
        "connectivitysoftware-currentfirmwareversion" => json!({"value": "2023.2.1"}),
        "diagnostics-mil" => {
            json!({"status": "ALERT", "description": "Malfunction indicator lamp on"})
        }
        "diagnostics-dtccount" => unit_value(json!(1)),
        "diagnostics-dtclist" => {
            json!({"values": [{"code": "P302D", "timestamp": iso_millis(now_ms - 3_600_000)}]})
        }
        "hvac-cabintargettemperature" => unit_value(json!(21)),
        "internalcombustionengine-amountremaining" => unit_value(json!(30.3)),
        "internalcombustionengine-fuellevel" => unit_value(json!(55)),
        "internalcombustionengine-oillife" => unit_value(json!(72)),
        "internalcombustionengine-range" => unit_value(json!(480)),
        "location-preciselocation" => json!({
            "latitude": 37.7749, "longitude": -122.4194, "heading": 90, "direction": "E", "locationType": "CURRENT"
        }),
        "lowvoltagebattery-stateofcharge" => unit_value(json!(92)),
        "lowvoltagebattery-status" => json!({"value": "GOOD"}),
        "motion-currentspeed" => unit_value(json!(0)),
        "odometer-traveleddistance" => unit_value(json!(18342.7)),
        "service-records" => json!({"values": [{
            "id": "svc_1",
            "cost": {"amount": 89.95, "currency": "USD"},
            "time": iso_millis(now_ms - 90 * 86_400_000),
            "tasks": [{"id": "task_1", "description": "Oil and filter change"}],
            "details": [{"id": "detail_1", "description": "0W-16 synthetic"}],
            "odometer": 16090
        }]}),
        "surveillance-brand" => json!({"value": "Toyota Guardian"}),
        "tractionbattery-maxrangechargecounter" => unit_value(json!(3)),
        "tractionbattery-nominalcapacity" => json!({
            "source": "SMARTCAR", "capacity": 18.1,
            "availableCapacities": [{"capacity": 18.1, "description": "PHEV:Standard"}], "unit": "kilowatt_hours"
        }),
        "tractionbattery-range" => json!({
            "unit": "kilometers", "value": 53.1, "additionalValues": [{"type": "ESTIMATED", "value": 49.8}]
        }),
        "tractionbattery-stateofcharge" => unit_value(json!(78)),
        "transmission-gearstate" => json!({"value": "PARK"}),
        "transmission-drivemode" => json!({"canonical": "NORMAL", "oemDisplayName": "Normal"}),
        "vehicleidentification-nickname" => json!({"value": "Family RAV4"}),
        "vehicleidentification-exteriorcolor" => json!({"value": "Supersonic Red"}),
        "vehicleidentification-vin" => json!({"value": sample_vehicle().vin}),
        "vehicleidentification-packages" => json!({"values": ["XSE", "Premium"]}),
        "vehicleuseraccount-permissions" => {
            json!({"values": ["read_battery", "read_charge", "read_fuel", "read_location", "read_odometer"]})
        }
        "vehicleuseraccount-role" => json!({"value": "Owner"}),
        "wheel-tires" => {
            let pressures = [250, 250, 245, 246];
            let values: Vec<Value> = (0..4)
                .map(|i| json!({"row": i / 2, "column": i % 2, "tirePressure": pressures[i]}))
                .collect();
            json!({"values": values, "rowCount": 2, "columnCount": 2, "unit": "kilopascals"})
        }
        "wheel-style" => json!({"value": "18-inch alloy"}),
        // Plugged in and charging at home, parked, locked and online.
        "charge-ischarging"
        | "charge-ischargingcableconnected"
        | "charge-ischargingcablelatched"
        | "charge-ischargingportflapopen"
        | "closure-islocked"
        | "connectivitystatus-isonline"
        | "location-isathome" => json!({"value": true}),
        // What is left: every other switch is off and every other diagnostics system fine.
        _ => match d.body {
            BodyKind::BoolValue => json!({"value": false}),
            _ if d.alert_system.is_some() => json!({"status": "OK", "description": "No issues"}),
            _ => unit_value(json!(0)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::units::UnitSystem;
    use crate::v2::{render_endpoint, V2Path, VehicleInfo};

    #[test]
    fn every_signal_has_a_sample_that_validates() {
        let samples = sample_signals(1_731_940_331_000);
        assert_eq!(samples.len(), catalog::all().len());
        for d in catalog::all() {
            let body = &samples[d.code].body;
            assert_eq!(d.validate_body(body), Ok(()), "{}: {body}", d.code);
            assert_eq!(
                &d.normalize_body(body),
                body,
                "{} is not stored-form",
                d.code
            );
        }
    }

    #[test]
    fn every_v2_path_renders_from_the_samples() {
        let vehicle = sample_vehicle();
        let info = VehicleInfo {
            id: "v",
            make: &vehicle.make,
            model: &vehicle.model,
            year: vehicle.year,
            vin: Some(&vehicle.vin),
        };
        let signals = sample_signals(1_731_940_331_000);
        for path in V2Path::all() {
            let r = render_endpoint(*path, &info, &signals, UnitSystem::Imperial, "req");
            assert_eq!(r.code, 200, "{path}: {}", r.body);
        }
    }

    #[test]
    fn the_sample_vin_has_a_valid_check_digit() {
        let vin = sample_vehicle().vin;
        let value = |c: char| match c {
            '0'..='9' => c as u32 - '0' as u32,
            'A'..='H' => c as u32 - 'A' as u32 + 1,
            'J'..='N' => c as u32 - 'J' as u32 + 1,
            'P' => 7,
            'R' => 9,
            'S'..='Z' => c as u32 - 'S' as u32 + 2,
            _ => panic!("{c} is not a VIN character"),
        };
        let weights = [8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2];
        let sum: u32 = vin.chars().zip(weights).map(|(c, w)| value(c) * w).sum();
        let check = match sum % 11 {
            10 => 'X',
            n => char::from_digit(n, 10).unwrap(),
        };
        assert_eq!(vin.chars().nth(8), Some(check));
    }
}
