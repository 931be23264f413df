//! Smartcar v2.0 vehicle-API endpoint bodies (`/battery`, `/charge`, …), rendered from signals.
//! The same items are the `data` of v2.0 scheduled and dynamic webhooks and the answers of
//! fleethook's Smartcar-compatible `/v2.0/vehicles/{id}/…` API.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::error::SmartcarError;
use crate::json::number;
use crate::signal::{SignalSource, SignalValue};
use crate::time::iso_millis;
use crate::units::{self, Dimension, UnitSystem};

/// A v2.0 endpoint path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum V2Path {
    /// `/`: `{id, make, model, year}`.
    Root,
    Battery,
    Charge,
    Location,
    Odometer,
    Fuel,
    EngineOil,
    TiresPressure,
    Vin,
}

impl V2Path {
    /// Every path, in Smartcar's documentation order.
    pub fn all() -> &'static [V2Path] {
        &[
            V2Path::Root,
            V2Path::Battery,
            V2Path::Charge,
            V2Path::Location,
            V2Path::Odometer,
            V2Path::Fuel,
            V2Path::EngineOil,
            V2Path::TiresPressure,
            V2Path::Vin,
        ]
    }

    /// A path with or without its leading (and trailing) slash: `/battery`, `battery`,
    /// `/engine/oil`, `/` or the empty string for the root.
    pub fn parse(s: &str) -> Option<Self> {
        let trimmed = s.trim_matches('/');
        V2Path::all()
            .iter()
            .copied()
            .find(|p| &p.as_str()[1..] == trimmed)
    }

    /// The path as Smartcar writes it: `/battery`, `/engine/oil`, `/`.
    pub fn as_str(&self) -> &'static str {
        match self {
            V2Path::Root => "/",
            V2Path::Battery => "/battery",
            V2Path::Charge => "/charge",
            V2Path::Location => "/location",
            V2Path::Odometer => "/odometer",
            V2Path::Fuel => "/fuel",
            V2Path::EngineOil => "/engine/oil",
            V2Path::TiresPressure => "/tires/pressure",
            V2Path::Vin => "/vin",
        }
    }

    /// The signals this path is rendered from.
    pub fn signal_codes(&self) -> &'static [&'static str] {
        match self {
            V2Path::Root => &[],
            V2Path::Battery => &[RANGE, SOC],
            V2Path::Charge => &[PLUGGED_IN, CHARGING_STATUS],
            V2Path::Location => &[LOCATION],
            V2Path::Odometer => &[ODOMETER],
            V2Path::Fuel => &[FUEL_RANGE, FUEL_LEVEL, FUEL_AMOUNT],
            V2Path::EngineOil => &[OIL_LIFE],
            V2Path::TiresPressure => &[TIRES],
            V2Path::Vin => &[VIN],
        }
    }
}

impl fmt::Display for V2Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for V2Path {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for V2Path {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        V2Path::parse(&s)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown v2.0 path {s:?}")))
    }
}

const RANGE: &str = "tractionbattery-range";
const SOC: &str = "tractionbattery-stateofcharge";
const PLUGGED_IN: &str = "charge-ischargingcableconnected";
const CHARGING_STATUS: &str = "charge-detailedchargingstatus";
const LOCATION: &str = "location-preciselocation";
const ODOMETER: &str = "odometer-traveleddistance";
const FUEL_RANGE: &str = "internalcombustionengine-range";
const FUEL_LEVEL: &str = "internalcombustionengine-fuellevel";
const FUEL_AMOUNT: &str = "internalcombustionengine-amountremaining";
const OIL_LIFE: &str = "internalcombustionengine-oillife";
const TIRES: &str = "wheel-tires";
const VIN: &str = "vehicleidentification-vin";

/// What the vehicle record (not its signals) says about a vehicle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VehicleInfo<'a> {
    pub id: &'a str,
    pub make: &'a str,
    pub model: &'a str,
    pub year: i32,
    pub vin: Option<&'a str>,
}

/// One endpoint answer: `{"path","code","body","headers"}`, as in v2.0 webhook `data` and
/// batch responses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EndpointResponse {
    pub path: String,
    pub code: u16,
    pub body: Value,
    pub headers: Map<String, Value>,
}

/// Renders one endpoint. A path whose signals are missing (or unusable) is a 501
/// `VEHICLE_NOT_CAPABLE` item with empty headers, never a missing item.
pub fn render_endpoint(
    path: V2Path,
    vehicle: &VehicleInfo,
    signals: &dyn SignalSource,
    units: UnitSystem,
    request_id: &str,
) -> EndpointResponse {
    match render_body(path, vehicle, signals, units) {
        Ok((body, data_time)) => {
            let mut headers = Map::new();
            if let Some(t) = data_time {
                headers.insert("sc-data-age".into(), Value::from(iso_millis(t)));
            }
            headers.insert("sc-unit-system".into(), Value::from(units.as_str()));
            EndpointResponse {
                path: path.as_str().to_string(),
                code: 200,
                body,
                headers,
            }
        }
        Err(missing) => {
            let description = format!(
                "The vehicle is incapable of performing your request: no usable value of {}.",
                missing.join(", ")
            );
            let err = SmartcarError::vehicle_not_capable(request_id, &description);
            EndpointResponse {
                path: path.as_str().to_string(),
                code: err.status_code,
                body: serde_json::to_value(&err).expect("an error body serializes"),
                headers: Map::new(),
            }
        }
    }
}

/// Reads the signals of one path, remembering the newest data time and what is missing.
struct Reader<'s> {
    signals: &'s dyn SignalSource,
    newest: Option<i64>,
    missing: Vec<&'static str>,
}

impl<'s> Reader<'s> {
    fn read<T>(
        &mut self,
        code: &'static str,
        extract: impl FnOnce(&SignalValue) -> Option<T>,
    ) -> Option<T> {
        let found = self
            .signals
            .signal(code)
            .and_then(|s| extract(s).map(|v| (v, s.data_time())));
        match found {
            Some((value, at)) => {
                self.newest = Some(self.newest.map_or(at, |n| n.max(at)));
                Some(value)
            }
            None => {
                self.missing.push(code);
                None
            }
        }
    }

    /// The body, if nothing was missing, with the newest data time.
    fn finish(
        self,
        body: impl FnOnce() -> Value,
    ) -> Result<(Value, Option<i64>), Vec<&'static str>> {
        if self.missing.is_empty() {
            Ok((body(), self.newest))
        } else {
            Err(self.missing)
        }
    }
}

fn quantity(dimension: Dimension, units: UnitSystem) -> impl Fn(&SignalValue) -> Option<Value> {
    move |s| {
        s.number()
            .map(|x| number(units::express(x, s.unit(), dimension, units)))
    }
}

fn fraction(s: &SignalValue) -> Option<Value> {
    s.number().map(|x| number(units::percent_to_fraction(x)))
}

fn tires(units: UnitSystem) -> impl Fn(&SignalValue) -> Option<[Value; 4]> {
    move |s| {
        let unit = s.unit();
        let items = s.body.get("values")?.as_array()?;
        let at = |row: u64, column: u64| {
            items.iter().find_map(|item| {
                let here =
                    item.get("row")?.as_u64()? == row && item.get("column")?.as_u64()? == column;
                let kpa = item.get("tirePressure")?.as_f64()?;
                here.then(|| number(units::express(kpa, unit, Dimension::Pressure, units)))
            })
        };
        Some([at(0, 0)?, at(0, 1)?, at(1, 0)?, at(1, 1)?])
    }
}

type Rendered = Result<(Value, Option<i64>), Vec<&'static str>>;

fn render_body(
    path: V2Path,
    vehicle: &VehicleInfo,
    signals: &dyn SignalSource,
    units: UnitSystem,
) -> Rendered {
    let mut r = Reader {
        signals,
        newest: None,
        missing: Vec::new(),
    };
    let mut body = Map::new();
    let mut put = |key: &str, value: Option<Value>| {
        if let Some(v) = value {
            body.insert(key.to_string(), v);
        }
    };
    match path {
        V2Path::Root => {
            return Ok((
                serde_json::json!({"id": vehicle.id, "make": vehicle.make, "model": vehicle.model, "year": vehicle.year}),
                None,
            ));
        }
        V2Path::Battery => {
            put("range", r.read(RANGE, quantity(Dimension::Distance, units)));
            put("percentRemaining", r.read(SOC, fraction));
        }
        V2Path::Charge => {
            put(
                "isPluggedIn",
                r.read(PLUGGED_IN, |s| s.bool_value().map(Value::from)),
            );
            put(
                "state",
                r.read(CHARGING_STATUS, |s| s.str_value().map(Value::from)),
            );
        }
        V2Path::Location => {
            let position = r.read(LOCATION, |s| {
                Some((
                    s.body.get("latitude")?.as_f64()?,
                    s.body.get("longitude")?.as_f64()?,
                ))
            });
            if let Some((latitude, longitude)) = position {
                put("latitude", Some(number(latitude)));
                put("longitude", Some(number(longitude)));
            }
        }
        V2Path::Odometer => put(
            "distance",
            r.read(ODOMETER, quantity(Dimension::Distance, units)),
        ),
        V2Path::Fuel => {
            put(
                "range",
                r.read(FUEL_RANGE, quantity(Dimension::Distance, units)),
            );
            put("percentRemaining", r.read(FUEL_LEVEL, fraction));
            put(
                "amountRemaining",
                r.read(FUEL_AMOUNT, quantity(Dimension::Volume, units)),
            );
        }
        V2Path::EngineOil => put("lifeRemaining", r.read(OIL_LIFE, fraction)),
        V2Path::TiresPressure => {
            if let Some([fl, fr, bl, br]) = r.read(TIRES, tires(units)) {
                put("frontLeft", Some(fl));
                put("frontRight", Some(fr));
                put("backLeft", Some(bl));
                put("backRight", Some(br));
            }
        }
        V2Path::Vin => {
            // The VIN signal when the vehicle reported one, else the vehicle record's, which
            // carries no data age.
            let reported = signals
                .signal(VIN)
                .and_then(SignalValue::str_value)
                .is_some();
            match vehicle.vin.filter(|v| !v.is_empty()) {
                Some(vin) if !reported => put("vin", Some(Value::from(vin))),
                _ => put("vin", r.read(VIN, |s| s.str_value().map(Value::from))),
            }
        }
    }
    r.finish(|| Value::Object(body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::HashMap;

    const VEHICLE: VehicleInfo<'static> = VehicleInfo {
        id: "veh_1",
        make: "TESLA",
        model: "Model 3",
        year: 2020,
        vin: Some("5YJ3E1EA7LF000001"),
    };
    const T0: i64 = 1_726_869_486_000; // 2024-09-20T21:58:06.000Z

    fn signals(list: &[(&str, Value, Option<i64>)]) -> HashMap<String, SignalValue> {
        list.iter()
            .map(|(code, body, oem)| {
                let value = SignalValue {
                    code: code.to_string(),
                    body: body.clone(),
                    oem_updated_at: *oem,
                    retrieved_at: T0 + 5,
                };
                (code.to_string(), value)
            })
            .collect()
    }

    fn render(path: V2Path, s: &HashMap<String, SignalValue>, units: UnitSystem) -> String {
        serde_json::to_string(&render_endpoint(path, &VEHICLE, s, units, "req_1")).unwrap()
    }

    #[test]
    fn paths_parse_with_or_without_slashes() {
        assert_eq!(V2Path::parse("/battery"), Some(V2Path::Battery));
        assert_eq!(V2Path::parse("battery"), Some(V2Path::Battery));
        assert_eq!(V2Path::parse("/battery/"), Some(V2Path::Battery));
        assert_eq!(V2Path::parse("/"), Some(V2Path::Root));
        assert_eq!(V2Path::parse(""), Some(V2Path::Root));
        assert_eq!(V2Path::parse("/engine/oil"), Some(V2Path::EngineOil));
        assert_eq!(V2Path::parse("engine/oil"), Some(V2Path::EngineOil));
        assert_eq!(
            V2Path::parse("/tires/pressure"),
            Some(V2Path::TiresPressure)
        );
        assert_eq!(V2Path::parse("/engine"), None);
        assert_eq!(V2Path::parse("/Battery"), None);
        for p in V2Path::all() {
            assert_eq!(V2Path::parse(p.as_str()), Some(*p));
            assert_eq!(
                serde_json::from_value::<V2Path>(serde_json::to_value(p).unwrap()).unwrap(),
                *p
            );
        }
    }

    #[test]
    fn battery_matches_the_spec_example() {
        let s = signals(&[
            (RANGE, json!({"unit":"kilometers","value":283.2}), Some(T0)),
            (SOC, json!({"unit":"percent","value":58}), Some(T0 - 60_000)),
        ]);
        assert_eq!(
            render(V2Path::Battery, &s, UnitSystem::Metric),
            r#"{"path":"/battery","code":200,"body":{"range":283.2,"percentRemaining":0.58},"headers":{"sc-data-age":"2024-09-20T21:58:06.000Z","sc-unit-system":"metric"}}"#
        );
        assert_eq!(
            render(V2Path::Battery, &s, UnitSystem::Imperial),
            r#"{"path":"/battery","code":200,"body":{"range":175.97,"percentRemaining":0.58},"headers":{"sc-data-age":"2024-09-20T21:58:06.000Z","sc-unit-system":"imperial"}}"#
        );
    }

    #[test]
    fn data_age_falls_back_to_retrieved_at() {
        let s = signals(&[(ODOMETER, json!({"unit":"km","value":50000}), None)]);
        assert_eq!(
            render(V2Path::Odometer, &s, UnitSystem::Metric),
            r#"{"path":"/odometer","code":200,"body":{"distance":50000},"headers":{"sc-data-age":"2024-09-20T21:58:06.005Z","sc-unit-system":"metric"}}"#
        );
    }

    #[test]
    fn a_missing_signal_is_a_501_item_with_empty_headers() {
        let s = signals(&[(SOC, json!({"unit":"percent","value":58}), None)]);
        let r = render_endpoint(V2Path::Battery, &VEHICLE, &s, UnitSystem::Metric, "req_1");
        assert_eq!(r.code, 501);
        assert!(r.headers.is_empty());
        assert_eq!(r.body["type"], "COMPATIBILITY");
        assert_eq!(r.body["code"], "VEHICLE_NOT_CAPABLE");
        assert_eq!(r.body["statusCode"], 501);
        assert_eq!(r.body["requestId"], "req_1");
        assert!(r.body["description"].as_str().unwrap().contains(RANGE));
        let keys: Vec<&str> = r
            .body
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            [
                "type",
                "code",
                "description",
                "docURL",
                "statusCode",
                "requestId",
                "resolution"
            ]
        );
        // A body of the wrong shape is as good as missing.
        let bad = signals(&[(ODOMETER, json!({"value":"far"}), None)]);
        assert_eq!(
            render_endpoint(V2Path::Odometer, &VEHICLE, &bad, UnitSystem::Metric, "r").code,
            501
        );
    }

    #[test]
    fn charge_location_fuel_and_oil_read_their_signals() {
        let s = signals(&[
            (PLUGGED_IN, json!({"value":true}), Some(T0)),
            (CHARGING_STATUS, json!({"value":"CHARGING"}), Some(T0)),
            (
                LOCATION,
                json!({"latitude":37.7749,"longitude":-122.4194,"heading":45.5}),
                Some(T0),
            ),
            (
                FUEL_RANGE,
                json!({"unit":"kilometers","value":450}),
                Some(T0),
            ),
            (FUEL_LEVEL, json!({"unit":"percent","value":75}), Some(T0)),
            (FUEL_AMOUNT, json!({"unit":"liters","value":45.5}), Some(T0)),
            (OIL_LIFE, json!({"unit":"percent","value":85}), Some(T0)),
        ]);
        let body = |p, u| render_endpoint(p, &VEHICLE, &s, u, "r").body.to_string();
        assert_eq!(
            body(V2Path::Charge, UnitSystem::Metric),
            r#"{"isPluggedIn":true,"state":"CHARGING"}"#
        );
        assert_eq!(
            body(V2Path::Location, UnitSystem::Metric),
            r#"{"latitude":37.7749,"longitude":-122.4194}"#
        );
        assert_eq!(
            body(V2Path::Fuel, UnitSystem::Metric),
            r#"{"range":450,"percentRemaining":0.75,"amountRemaining":45.5}"#
        );
        assert_eq!(
            body(V2Path::Fuel, UnitSystem::Imperial),
            r#"{"range":279.62,"percentRemaining":0.75,"amountRemaining":12.02}"#
        );
        assert_eq!(
            body(V2Path::EngineOil, UnitSystem::Metric),
            r#"{"lifeRemaining":0.85}"#
        );
    }

    #[test]
    fn stored_imperial_values_convert_to_metric() {
        let s = signals(&[(ODOMETER, json!({"unit":"miles","value":100}), Some(T0))]);
        let r = render_endpoint(V2Path::Odometer, &VEHICLE, &s, UnitSystem::Metric, "r");
        assert_eq!(r.body.to_string(), r#"{"distance":160.93}"#);
        let r = render_endpoint(V2Path::Odometer, &VEHICLE, &s, UnitSystem::Imperial, "r");
        assert_eq!(r.body.to_string(), r#"{"distance":100}"#);
    }

    #[test]
    fn tires_map_rows_and_columns_to_corners() {
        let s = signals(&[(
            TIRES,
            json!({"values":[
                {"row":1,"column":1,"tirePressure":244},
                {"row":0,"column":0,"tirePressure":250},
                {"row":0,"column":1,"tirePressure":251},
                {"row":1,"column":0,"tirePressure":243.5}],"rowCount":2,"columnCount":2}),
            Some(T0),
        )]);
        let body = |u| {
            render_endpoint(V2Path::TiresPressure, &VEHICLE, &s, u, "r")
                .body
                .to_string()
        };
        assert_eq!(
            body(UnitSystem::Metric),
            r#"{"frontLeft":250,"frontRight":251,"backLeft":243.5,"backRight":244}"#
        );
        assert_eq!(
            body(UnitSystem::Imperial),
            r#"{"frontLeft":36.26,"frontRight":36.4,"backLeft":35.32,"backRight":35.39}"#
        );
        let three = signals(&[(
            TIRES,
            json!({"values":[{"row":0,"column":0,"tirePressure":250}]}),
            None,
        )]);
        assert_eq!(
            render_endpoint(
                V2Path::TiresPressure,
                &VEHICLE,
                &three,
                UnitSystem::Metric,
                "r"
            )
            .code,
            501
        );
    }

    #[test]
    fn root_and_vin_from_the_vehicle_record_carry_no_data_age() {
        let none = signals(&[]);
        assert_eq!(
            render(V2Path::Root, &none, UnitSystem::Metric),
            r#"{"path":"/","code":200,"body":{"id":"veh_1","make":"TESLA","model":"Model 3","year":2020},"headers":{"sc-unit-system":"metric"}}"#
        );
        assert_eq!(
            render(V2Path::Vin, &none, UnitSystem::Metric),
            r#"{"path":"/vin","code":200,"body":{"vin":"5YJ3E1EA7LF000001"},"headers":{"sc-unit-system":"metric"}}"#
        );
        let reported = signals(&[(VIN, json!({"value":"5YJ3E1EA7LF000002"}), Some(T0))]);
        assert_eq!(
            render(V2Path::Vin, &reported, UnitSystem::Metric),
            r#"{"path":"/vin","code":200,"body":{"vin":"5YJ3E1EA7LF000002"},"headers":{"sc-data-age":"2024-09-20T21:58:06.000Z","sc-unit-system":"metric"}}"#
        );
        let no_vin = VehicleInfo {
            vin: None,
            ..VEHICLE
        };
        assert_eq!(
            render_endpoint(V2Path::Vin, &no_vin, &none, UnitSystem::Metric, "r").code,
            501
        );
    }

    #[test]
    fn whole_values_stored_as_floats_are_written_as_integers() {
        let s = signals(&[
            (RANGE, json!({"unit":"kilometers","value":300.0}), None),
            (SOC, json!({"unit":"percent","value":100.0}), None),
        ]);
        let r = render_endpoint(V2Path::Battery, &VEHICLE, &s, UnitSystem::Metric, "r");
        assert_eq!(r.body.to_string(), r#"{"range":300,"percentRemaining":1}"#);
    }
}
