//! Smartcar's signal schema: every signal's code, name, group and body shape, and validation
//! of bodies that come in through the ingest API.
//!
//! Built from reference/smartcar-signals.md. Units are stored in one vocabulary, the one of
//! Smartcar's per-signal documentation pages (`kilometers`, `percent`, `liters`, `celsius`,
//! `kph`, `volts`, `amps`, `watts`, `kilowatt_hours`, `count`, `kilopascals`); bodies may
//! carry other spellings (`km`, `kWh`, `miles`…), which [`crate::units`] understands.

use std::collections::HashMap;
use std::sync::OnceLock;

use serde_json::{Map, Value};

use crate::json;

/// The shape of a signal's body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BodyKind {
    /// `{unit, value: number}`.
    UnitValue,
    /// `{value: boolean}`.
    BoolValue,
    /// `{value: number}` without a unit.
    NumberValue,
    /// `{value: string}`.
    StringValue,
    /// `{values: […], …}`.
    Values,
    /// An object with named fields, such as `{latitude, longitude}`.
    Object,
}

/// A JSON type a field must have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JsonType {
    String,
    Number,
    /// A whole number (`2` or `2.0`).
    Integer,
    Bool,
    Object,
    Array,
    /// Anything, `null` included.
    Any,
}

impl JsonType {
    fn describe(self) -> &'static str {
        match self {
            JsonType::String => "a string",
            JsonType::Number => "a number",
            JsonType::Integer => "a whole number",
            JsonType::Bool => "true or false",
            JsonType::Object => "an object",
            JsonType::Array => "an array",
            JsonType::Any => "any value",
        }
    }

    fn accepts(self, v: &Value) -> bool {
        match self {
            JsonType::String => v.is_string(),
            JsonType::Number => v.is_number(),
            JsonType::Integer => v.as_f64().is_some_and(|f| f.fract() == 0.0),
            JsonType::Bool => v.is_boolean(),
            JsonType::Object => v.is_object(),
            JsonType::Array => v.is_array(),
            JsonType::Any => true,
        }
    }
}

/// A check beyond the type.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Rule {
    None,
    /// A number from `min` to `max`, both included.
    Range(f64, f64),
    /// A number not below this.
    Min(f64),
    /// One of these strings.
    OneOf(&'static [&'static str]),
    /// An ISO 8601 time string.
    Timestamp,
}

/// One field of a body (or of an item of `values`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FieldDef {
    pub name: &'static str,
    pub ty: JsonType,
    /// A required field must be present and not `null`; an optional one may be either.
    pub required: bool,
    pub rule: Rule,
}

/// What the items of a `Values` body are.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Items {
    /// Not a `Values` body.
    None,
    /// Strings, e.g. `{"values":["vehicle_cmds"]}`.
    Strings,
    /// Objects with these fields (extra fields allowed).
    Objects(&'static [FieldDef]),
}

/// One signal of the catalog.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SignalDef {
    /// `<group>-<name>` in lower case, e.g. `tractionbattery-stateofcharge`.
    pub code: &'static str,
    /// PascalCase name, e.g. `StateOfCharge`.
    pub name: &'static str,
    /// PascalCase group (`HVAC` stays upper case), e.g. `TractionBattery`.
    pub group: &'static str,
    pub body: BodyKind,
    /// The unit fleethook stores the body's numbers in: for `{unit, value}` signals, and for
    /// bodies that carry one unit for all their numbers (tire pressures, charge limits, capacity).
    pub unit: Option<&'static str>,
    /// A static attribute of the vehicle rather than a changing signal.
    pub attribute: bool,
    /// Fields checked beside the body kind's own (`value`, `unit`; an Object's fields; the
    /// fields next to `values`).
    pub fields: &'static [FieldDef],
    /// For `Values` bodies: what each item of `values` is.
    pub items: Items,
    /// For diagnostics system signals: the v3.0 `systemId` (`SYSTEM_ABS`).
    pub alert_system: Option<&'static str>,
}

const fn req(name: &'static str, ty: JsonType) -> FieldDef {
    FieldDef {
        name,
        ty,
        required: true,
        rule: Rule::None,
    }
}

const fn opt(name: &'static str, ty: JsonType) -> FieldDef {
    FieldDef {
        name,
        ty,
        required: false,
        rule: Rule::None,
    }
}

impl FieldDef {
    const fn rule(mut self, rule: Rule) -> Self {
        self.rule = rule;
        self
    }
}

const PERCENT: Rule = Rule::Range(0.0, 100.0);
const NON_NEGATIVE: Rule = Rule::Min(0.0);

use JsonType::{Any, Array, Bool, Integer, Number, Object, String as Str};

const UNIT: FieldDef = opt("unit", Str);
const UV_ANY: &[FieldDef] = &[UNIT, req("value", Number)];
const UV_NON_NEGATIVE: &[FieldDef] = &[UNIT, req("value", Number).rule(NON_NEGATIVE)];
const UV_PERCENT: &[FieldDef] = &[UNIT, req("value", Number).rule(PERCENT)];
const UV_COUNT: &[FieldDef] = &[UNIT, req("value", Integer).rule(NON_NEGATIVE)];
const UV_RANGE: &[FieldDef] = &[
    UNIT,
    req("value", Number).rule(NON_NEGATIVE),
    opt("additionalValues", Array),
];
const BOOL_VALUE: &[FieldDef] = &[req("value", Bool)];
const STRING_VALUE: &[FieldDef] = &[req("value", Str)];
const MINUTES_VALUE: &[FieldDef] = &[req("value", Number).rule(NON_NEGATIVE)];
const GRID: &[FieldDef] = &[
    opt("rowCount", Integer).rule(NON_NEGATIVE),
    opt("columnCount", Integer).rule(NON_NEGATIVE),
];
const TIRES_TOP: &[FieldDef] = &[
    opt("rowCount", Integer).rule(NON_NEGATIVE),
    opt("columnCount", Integer).rule(NON_NEGATIVE),
    UNIT,
];
const ROW: FieldDef = req("row", Integer).rule(NON_NEGATIVE);
const COLUMN: FieldDef = req("column", Integer).rule(NON_NEGATIVE);
const OPEN_CLOSED: &[FieldDef] = &[req("isOpen", Bool)];
const TRUNK: &[FieldDef] = &[req("isOpen", Bool), opt("isLocked", Bool)];
const SYSTEM_STATUS: &[FieldDef] = &[
    req("status", Str).rule(Rule::OneOf(&["OK", "ALERT"])),
    opt("description", Str),
];

const fn def(
    code: &'static str,
    group: &'static str,
    name: &'static str,
    body: BodyKind,
    unit: Option<&'static str>,
    fields: &'static [FieldDef],
    items: Items,
) -> SignalDef {
    SignalDef {
        code,
        name,
        group,
        body,
        unit,
        attribute: false,
        fields,
        items,
        alert_system: None,
    }
}

const fn unit_value(
    code: &'static str,
    group: &'static str,
    name: &'static str,
    unit: &'static str,
    fields: &'static [FieldDef],
) -> SignalDef {
    def(
        code,
        group,
        name,
        BodyKind::UnitValue,
        Some(unit),
        fields,
        Items::None,
    )
}

const fn boolean(code: &'static str, group: &'static str, name: &'static str) -> SignalDef {
    def(
        code,
        group,
        name,
        BodyKind::BoolValue,
        None,
        BOOL_VALUE,
        Items::None,
    )
}

const fn string(
    code: &'static str,
    group: &'static str,
    name: &'static str,
    fields: &'static [FieldDef],
) -> SignalDef {
    def(
        code,
        group,
        name,
        BodyKind::StringValue,
        None,
        fields,
        Items::None,
    )
}

const fn values(
    code: &'static str,
    group: &'static str,
    name: &'static str,
    unit: Option<&'static str>,
    fields: &'static [FieldDef],
    items: Items,
) -> SignalDef {
    def(code, group, name, BodyKind::Values, unit, fields, items)
}

const fn object(
    code: &'static str,
    group: &'static str,
    name: &'static str,
    unit: Option<&'static str>,
    fields: &'static [FieldDef],
) -> SignalDef {
    def(
        code,
        group,
        name,
        BodyKind::Object,
        unit,
        fields,
        Items::None,
    )
}

const fn system(code: &'static str, name: &'static str, system_id: &'static str) -> SignalDef {
    let mut d = object(code, "Diagnostics", name, None, SYSTEM_STATUS);
    d.alert_system = Some(system_id);
    d
}

impl SignalDef {
    const fn attr(mut self) -> Self {
        self.attribute = true;
        self
    }
}

static SIGNALS: &[SignalDef] = &[
    // Charge
    unit_value("charge-amperage", "Charge", "Amperage", "amps", UV_ANY),
    unit_value(
        "charge-amperagemax",
        "Charge",
        "AmperageMax",
        "amps",
        UV_NON_NEGATIVE,
    ),
    unit_value(
        "charge-amperagerequested",
        "Charge",
        "AmperageRequested",
        "amps",
        UV_NON_NEGATIVE,
    ),
    values(
        "charge-chargelimits",
        "Charge",
        "ChargeLimits",
        Some("percent"),
        &[opt("activeLimit", Number).rule(PERCENT), UNIT],
        Items::Objects(&[
            req("type", Str),
            req("limit", Number).rule(PERCENT),
            opt("condition", Any),
        ]),
    ),
    string(
        "charge-chargeportstatuscolor",
        "Charge",
        "ChargePortStatusColor",
        STRING_VALUE,
    ),
    unit_value("charge-chargerate", "Charge", "ChargeRate", "kph", UV_ANY),
    values(
        "charge-chargerecords",
        "Charge",
        "ChargeRecords",
        None,
        &[],
        Items::Objects(&[
            opt("id", Any),
            opt("cost", Object),
            opt("startTime", Str).rule(Rule::Timestamp),
            opt("endTime", Str).rule(Rule::Timestamp),
            opt("location", Object),
            opt("energyAdded", Number).rule(NON_NEGATIVE),
            opt("connectorType", Str),
            opt("isPublicCharger", Bool),
            opt("startStateOfCharge", Number).rule(PERCENT),
            opt("endStateOfCharge", Number).rule(PERCENT),
        ]),
    ),
    values(
        "charge-chargetimers",
        "Charge",
        "ChargeTimers",
        None,
        &[],
        Items::Objects(&[
            opt("type", Str),
            opt("condition", Any),
            opt("schedules", Array),
            opt("departureTimers", Array),
            opt("isOEMOptimizationEnabled", Bool),
        ]),
    ),
    unit_value(
        "charge-chargerphases",
        "Charge",
        "ChargerPhases",
        "count",
        UV_COUNT,
    ),
    string(
        "charge-chargingconnectortype",
        "Charge",
        "ChargingConnectorType",
        STRING_VALUE,
    ),
    string(
        "charge-detailedchargingstatus",
        "Charge",
        "DetailedChargingStatus",
        &[req("value", Str).rule(Rule::OneOf(&["CHARGING", "NOT_CHARGING", "FULLY_CHARGED"]))],
    ),
    unit_value(
        "charge-energyadded",
        "Charge",
        "EnergyAdded",
        "kilowatt_hours",
        UV_NON_NEGATIVE,
    ),
    string(
        "charge-fastchargertype",
        "Charge",
        "FastChargerType",
        STRING_VALUE,
    ),
    boolean("charge-ischarging", "Charge", "IsCharging"),
    boolean(
        "charge-ischargingcableconnected",
        "Charge",
        "IsChargingCableConnected",
    ),
    boolean(
        "charge-ischargingcablelatched",
        "Charge",
        "IsChargingCableLatched",
    ),
    boolean(
        "charge-ischargingportflapopen",
        "Charge",
        "IsChargingPortFlapOpen",
    ),
    boolean(
        "charge-isfastchargerpresent",
        "Charge",
        "IsFastChargerPresent",
    ),
    // Minutes, though the documented body carries no unit.
    def(
        "charge-timetocomplete",
        "Charge",
        "TimeToComplete",
        BodyKind::NumberValue,
        None,
        MINUTES_VALUE,
        Items::None,
    ),
    unit_value("charge-voltage", "Charge", "Voltage", "volts", UV_ANY),
    unit_value("charge-wattage", "Charge", "Wattage", "watts", UV_ANY),
    // Climate
    unit_value(
        "climate-externaltemperature",
        "Climate",
        "ExternalTemperature",
        "celsius",
        UV_ANY,
    ),
    unit_value(
        "climate-internaltemperature",
        "Climate",
        "InternalTemperature",
        "celsius",
        UV_ANY,
    ),
    // Closure
    values(
        "closure-doors",
        "Closure",
        "Doors",
        None,
        GRID,
        Items::Objects(&[ROW, COLUMN, opt("isOpen", Bool), opt("isLocked", Bool)]),
    ),
    values(
        "closure-windows",
        "Closure",
        "Windows",
        None,
        GRID,
        Items::Objects(&[ROW, COLUMN, opt("isOpen", Bool)]),
    ),
    object(
        "closure-enginecover",
        "Closure",
        "EngineCover",
        None,
        OPEN_CLOSED,
    ),
    object("closure-sunroof", "Closure", "Sunroof", None, OPEN_CLOSED),
    object("closure-fronttrunk", "Closure", "FrontTrunk", None, TRUNK),
    object("closure-reartrunk", "Closure", "RearTrunk", None, TRUNK),
    boolean("closure-islocked", "Closure", "IsLocked"),
    // Seen only in real deliveries; shaped like the trunks (an inference).
    object("closure-tailgate", "Closure", "Tailgate", None, TRUNK),
    // ConnectivitySoftware
    string(
        "connectivitysoftware-currentfirmwareversion",
        "ConnectivitySoftware",
        "CurrentFirmwareVersion",
        STRING_VALUE,
    ),
    // ConnectivityStatus
    boolean(
        "connectivitystatus-isasleep",
        "ConnectivityStatus",
        "IsAsleep",
    ),
    boolean(
        "connectivitystatus-isdigitalkeypaired",
        "ConnectivityStatus",
        "IsDigitalKeyPaired",
    ),
    boolean(
        "connectivitystatus-isonline",
        "ConnectivityStatus",
        "IsOnline",
    ),
    // Diagnostics: systems are {status, description}; system ids are Smartcar's, which split
    // acronyms (EV_HV) in a way no casing rule derives, hence spelled out.
    system("diagnostics-abs", "ABS", "SYSTEM_ABS"),
    system(
        "diagnostics-activesafety",
        "ActiveSafety",
        "SYSTEM_ACTIVE_SAFETY",
    ),
    system("diagnostics-airbag", "Airbag", "SYSTEM_AIRBAG"),
    system("diagnostics-brakefluid", "BrakeFluid", "SYSTEM_BRAKE_FLUID"),
    system(
        "diagnostics-driverassistance",
        "DriverAssistance",
        "SYSTEM_DRIVER_ASSISTANCE",
    ),
    system(
        "diagnostics-evbatteryconditioning",
        "EVBatteryConditioning",
        "SYSTEM_EV_BATTERY_CONDITIONING",
    ),
    system("diagnostics-evcharging", "EVCharging", "SYSTEM_EV_CHARGING"),
    system(
        "diagnostics-evdriveunit",
        "EVDriveUnit",
        "SYSTEM_EV_DRIVE_UNIT",
    ),
    system(
        "diagnostics-evhvbattery",
        "EVHVBattery",
        "SYSTEM_EV_HV_BATTERY",
    ),
    system("diagnostics-emissions", "Emissions", "SYSTEM_EMISSIONS"),
    system("diagnostics-lighting", "Lighting", "SYSTEM_LIGHTING"),
    system("diagnostics-mil", "MIL", "SYSTEM_MIL"),
    system("diagnostics-oillife", "OilLife", "SYSTEM_OIL_LIFE"),
    system(
        "diagnostics-oilpressure",
        "OilPressure",
        "SYSTEM_OIL_PRESSURE",
    ),
    system(
        "diagnostics-oiltemperature",
        "OilTemperature",
        "SYSTEM_OIL_TEMPERATURE",
    ),
    system("diagnostics-telematics", "Telematics", "SYSTEM_TELEMATICS"),
    system(
        "diagnostics-tirepressure",
        "TirePressure",
        "SYSTEM_TIRE_PRESSURE",
    ),
    system(
        "diagnostics-tirepressuremonitoring",
        "TirePressureMonitoring",
        "SYSTEM_TPMS",
    ),
    system(
        "diagnostics-transmission",
        "Transmission",
        "SYSTEM_TRANSMISSION",
    ),
    system(
        "diagnostics-washerfluid",
        "WasherFluid",
        "SYSTEM_WASHER_FLUID",
    ),
    system(
        "diagnostics-waterinfuel",
        "WaterInFuel",
        "SYSTEM_WATER_IN_FUEL",
    ),
    unit_value(
        "diagnostics-dtccount",
        "Diagnostics",
        "DTCCount",
        "count",
        UV_COUNT,
    ),
    values(
        "diagnostics-dtclist",
        "Diagnostics",
        "DTCList",
        None,
        &[],
        Items::Objects(&[
            req("code", Str),
            req("timestamp", Str).rule(Rule::Timestamp),
        ]),
    ),
    // HVAC
    unit_value(
        "hvac-cabintargettemperature",
        "HVAC",
        "CabinTargetTemperature",
        "celsius",
        UV_ANY,
    ),
    boolean("hvac-iscabinhvacactive", "HVAC", "IsCabinHVACActive"),
    boolean(
        "hvac-isfrontdefrosteractive",
        "HVAC",
        "IsFrontDefrosterActive",
    ),
    boolean(
        "hvac-isreardefrosteractive",
        "HVAC",
        "IsRearDefrosterActive",
    ),
    boolean(
        "hvac-issteeringheateractive",
        "HVAC",
        "IsSteeringHeaterActive",
    ),
    // InternalCombustionEngine
    unit_value(
        "internalcombustionengine-amountremaining",
        "InternalCombustionEngine",
        "AmountRemaining",
        "liters",
        UV_NON_NEGATIVE,
    ),
    unit_value(
        "internalcombustionengine-fuellevel",
        "InternalCombustionEngine",
        "FuelLevel",
        "percent",
        UV_PERCENT,
    ),
    unit_value(
        "internalcombustionengine-oillife",
        "InternalCombustionEngine",
        "OilLife",
        "percent",
        UV_PERCENT,
    ),
    unit_value(
        "internalcombustionengine-range",
        "InternalCombustionEngine",
        "Range",
        "kilometers",
        UV_NON_NEGATIVE,
    ),
    // Location
    boolean("location-isathome", "Location", "IsAtHome"),
    object(
        "location-preciselocation",
        "Location",
        "PreciseLocation",
        None,
        &[
            req("latitude", Number).rule(Rule::Range(-90.0, 90.0)),
            req("longitude", Number).rule(Rule::Range(-180.0, 180.0)),
            opt("heading", Number).rule(Rule::Range(0.0, 360.0)),
            opt("direction", Str).rule(Rule::OneOf(&["N", "NE", "E", "SE", "S", "SW", "W", "NW"])),
            opt("locationType", Str).rule(Rule::OneOf(&["CURRENT", "LAST_PARKED"])),
        ],
    ),
    // LowVoltageBattery
    unit_value(
        "lowvoltagebattery-stateofcharge",
        "LowVoltageBattery",
        "StateOfCharge",
        "percent",
        UV_PERCENT,
    ),
    string(
        "lowvoltagebattery-status",
        "LowVoltageBattery",
        "Status",
        &[req("value", Str).rule(Rule::OneOf(&["GOOD", "WARN", "BAD"]))],
    ),
    // Motion
    unit_value(
        "motion-currentspeed",
        "Motion",
        "CurrentSpeed",
        "kph",
        UV_NON_NEGATIVE,
    ),
    // Odometer
    unit_value(
        "odometer-traveleddistance",
        "Odometer",
        "TraveledDistance",
        "kilometers",
        UV_NON_NEGATIVE,
    ),
    // Service
    boolean("service-isinservice", "Service", "IsInService"),
    values(
        "service-records",
        "Service",
        "Records",
        None,
        &[],
        Items::Objects(&[
            opt("id", Any),
            opt("cost", Object),
            opt("time", Str).rule(Rule::Timestamp),
            opt("tasks", Array),
            opt("details", Array),
            opt("odometer", Any),
        ]),
    ),
    // Surveillance
    boolean("surveillance-isenabled", "Surveillance", "IsEnabled"),
    string("surveillance-brand", "Surveillance", "Brand", STRING_VALUE).attr(),
    // TractionBattery
    boolean(
        "tractionbattery-isheateractive",
        "TractionBattery",
        "IsHeaterActive",
    ),
    unit_value(
        "tractionbattery-maxrangechargecounter",
        "TractionBattery",
        "MaxRangeChargeCounter",
        "count",
        UV_COUNT,
    ),
    object(
        "tractionbattery-nominalcapacity",
        "TractionBattery",
        "NominalCapacity",
        Some("kilowatt_hours"),
        &[
            req("capacity", Number).rule(NON_NEGATIVE),
            opt("source", Str).rule(Rule::OneOf(&["SMARTCAR", "USER_SELECTED"])),
            opt("availableCapacities", Array),
            UNIT,
        ],
    ),
    unit_value(
        "tractionbattery-range",
        "TractionBattery",
        "Range",
        "kilometers",
        UV_RANGE,
    ),
    unit_value(
        "tractionbattery-stateofcharge",
        "TractionBattery",
        "StateOfCharge",
        "percent",
        UV_PERCENT,
    ),
    // Transmission
    string(
        "transmission-gearstate",
        "Transmission",
        "GearState",
        &[req("value", Str).rule(Rule::OneOf(&["PARK", "DRIVE", "REVERSE", "NEUTRAL"]))],
    ),
    object(
        "transmission-drivemode",
        "Transmission",
        "DriveMode",
        None,
        &[req("canonical", Str), opt("oemDisplayName", Str)],
    ),
    // VehicleIdentification
    string(
        "vehicleidentification-nickname",
        "VehicleIdentification",
        "Nickname",
        STRING_VALUE,
    ),
    string(
        "vehicleidentification-exteriorcolor",
        "VehicleIdentification",
        "ExteriorColor",
        STRING_VALUE,
    )
    .attr(),
    string(
        "vehicleidentification-vin",
        "VehicleIdentification",
        "VIN",
        STRING_VALUE,
    )
    .attr(),
    values(
        "vehicleidentification-packages",
        "VehicleIdentification",
        "Packages",
        None,
        &[],
        Items::Strings,
    ),
    // VehicleUserAccount
    values(
        "vehicleuseraccount-permissions",
        "VehicleUserAccount",
        "Permissions",
        None,
        &[],
        Items::Strings,
    ),
    string(
        "vehicleuseraccount-role",
        "VehicleUserAccount",
        "Role",
        STRING_VALUE,
    ),
    // Wheel
    values(
        "wheel-tires",
        "Wheel",
        "Tires",
        Some("kilopascals"),
        TIRES_TOP,
        Items::Objects(&[ROW, COLUMN, req("tirePressure", Number).rule(NON_NEGATIVE)]),
    ),
    string("wheel-style", "Wheel", "Style", STRING_VALUE).attr(),
];

/// Every signal, grouped by group in Smartcar's group order.
pub fn all() -> &'static [SignalDef] {
    SIGNALS
}

/// The signal with this code.
pub fn lookup(code: &str) -> Option<&'static SignalDef> {
    static INDEX: OnceLock<HashMap<&'static str, &'static SignalDef>> = OnceLock::new();
    INDEX
        .get_or_init(|| SIGNALS.iter().map(|d| (d.code, d)).collect())
        .get(code)
        .copied()
}

/// The diagnostics system signal whose v3.0 `systemId` is `system_id` (`SYSTEM_TPMS`).
pub fn by_system_id(system_id: &str) -> Option<&'static SignalDef> {
    SIGNALS.iter().find(|d| d.alert_system == Some(system_id))
}

/// Every group, in catalog order, each once.
pub fn groups() -> Vec<&'static str> {
    let mut groups: Vec<&'static str> = Vec::new();
    for d in SIGNALS {
        if !groups.contains(&d.group) {
            groups.push(d.group);
        }
    }
    groups
}

/// `(name, group)` of a code; for a code not in the catalog, the parts of the code itself, so
/// a payload never lacks them.
pub fn name_group(code: &str) -> (&str, &str) {
    match lookup(code) {
        Some(d) => (d.name, d.group),
        None => match code.split_once('-') {
            Some((group, name)) => (name, group),
            None => (code, ""),
        },
    }
}

impl SignalDef {
    /// Checks an incoming body against this signal's shape. The error is a short reason that
    /// names the field: `body.value must be a number`, `body.latitude is required`.
    pub fn validate_body(&self, body: &Value) -> Result<(), String> {
        let obj = body.as_object().ok_or("body must be an object")?;
        if self.body == BodyKind::Values {
            let items = obj
                .get("values")
                .and_then(Value::as_array)
                .ok_or("body.values must be an array")?;
            for (i, item) in items.iter().enumerate() {
                let path = format!("body.values[{i}]");
                match self.items {
                    Items::Strings if !item.is_string() => {
                        return Err(format!("{path} must be a string"))
                    }
                    Items::Objects(fields) => {
                        let item = item
                            .as_object()
                            .ok_or_else(|| format!("{path} must be an object"))?;
                        check_fields(item, fields, &path)?;
                    }
                    _ => {}
                }
            }
        }
        check_fields(obj, self.fields, "body")?;
        match json::first_inexact_number(body, "body") {
            Some(path) => Err(format!(
                "{path} cannot be carried exactly in JSON (whole numbers up to 2^53, no magnitudes from 1e-6 to 1e-5)"
            )),
            None => Ok(()),
        }
    }

    /// The v3.0 `systemId` of a diagnostics system signal (`SYSTEM_ABS`, `SYSTEM_TPMS`); `None`
    /// for every other signal, DTCList and DTCCount included.
    pub fn system_id(&self) -> Option<String> {
        self.alert_system.map(str::to_string)
    }

    /// A validated body in the form fleethook stores: numbers as JavaScript writes them and,
    /// for `{unit, value}` bodies, the unit filled in with the catalog's when missing and first.
    pub fn normalize_body(&self, body: &Value) -> Value {
        let mut body = json::canonical(body);
        if let (BodyKind::UnitValue, Some(unit), Value::Object(obj)) = (self.body, self.unit, &body)
        {
            if !obj.contains_key("unit") {
                let mut with_unit = Map::with_capacity(obj.len() + 1);
                with_unit.insert("unit".into(), Value::from(unit));
                with_unit.extend(obj.iter().map(|(k, v)| (k.clone(), v.clone())));
                body = Value::Object(with_unit);
            }
        }
        body
    }
}

fn check_fields(obj: &Map<String, Value>, fields: &[FieldDef], path: &str) -> Result<(), String> {
    for field in fields {
        let at = format!("{path}.{}", field.name);
        // An optional field may be null; a required one that is null has the wrong type.
        let value = match obj.get(field.name) {
            Some(Value::Null) | None if !field.required => continue,
            None => return Err(format!("{at} is required")),
            Some(v) => v,
        };
        if !field.ty.accepts(value) {
            return Err(format!("{at} must be {}", field.ty.describe()));
        }
        check_rule(value, field.rule, &at)?;
    }
    Ok(())
}

fn check_rule(value: &Value, rule: Rule, at: &str) -> Result<(), String> {
    match rule {
        Rule::None => Ok(()),
        Rule::Range(min, max) => match value.as_f64() {
            Some(x) if x < min || x > max => Err(format!("{at} must be from {min} to {max}")),
            _ => Ok(()),
        },
        Rule::Min(min) => match value.as_f64() {
            Some(x) if x < min => Err(format!("{at} must be at least {min}")),
            _ => Ok(()),
        },
        Rule::OneOf(allowed) => match value.as_str() {
            Some(s) if !allowed.contains(&s) => {
                Err(format!("{at} must be one of {}", allowed.join(", ")))
            }
            _ => Ok(()),
        },
        Rule::Timestamp => match value.as_str() {
            Some(s) if crate::time::parse_iso_millis(s).is_none() => Err(format!(
                "{at} must be an ISO 8601 time such as 2024-09-05T14:48:00.000Z"
            )),
            _ => Ok(()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::HashSet;

    const SPEC_GROUPS: [&str; 19] = [
        "Charge",
        "Climate",
        "Closure",
        "ConnectivitySoftware",
        "ConnectivityStatus",
        "Diagnostics",
        "HVAC",
        "InternalCombustionEngine",
        "Location",
        "LowVoltageBattery",
        "Motion",
        "Odometer",
        "Service",
        "Surveillance",
        "TractionBattery",
        "Transmission",
        "VehicleIdentification",
        "VehicleUserAccount",
        "Wheel",
    ];

    /// Every code of the reference table (reference/smartcar-signals.md), spelled out so that a
    /// signal dropped from the catalog fails here.
    const REFERENCE_CODES: &[&str] = &[
        "charge-amperage",
        "charge-amperagemax",
        "charge-amperagerequested",
        "charge-chargelimits",
        "charge-chargeportstatuscolor",
        "charge-chargerate",
        "charge-chargerecords",
        "charge-chargetimers",
        "charge-chargerphases",
        "charge-chargingconnectortype",
        "charge-detailedchargingstatus",
        "charge-energyadded",
        "charge-fastchargertype",
        "charge-ischarging",
        "charge-ischargingcableconnected",
        "charge-ischargingcablelatched",
        "charge-ischargingportflapopen",
        "charge-isfastchargerpresent",
        "charge-timetocomplete",
        "charge-voltage",
        "charge-wattage",
        "climate-externaltemperature",
        "climate-internaltemperature",
        "closure-doors",
        "closure-windows",
        "closure-enginecover",
        "closure-sunroof",
        "closure-fronttrunk",
        "closure-reartrunk",
        "closure-islocked",
        "closure-tailgate",
        "connectivitysoftware-currentfirmwareversion",
        "connectivitystatus-isasleep",
        "connectivitystatus-isdigitalkeypaired",
        "connectivitystatus-isonline",
        "diagnostics-abs",
        "diagnostics-activesafety",
        "diagnostics-airbag",
        "diagnostics-brakefluid",
        "diagnostics-driverassistance",
        "diagnostics-evbatteryconditioning",
        "diagnostics-evcharging",
        "diagnostics-evdriveunit",
        "diagnostics-evhvbattery",
        "diagnostics-emissions",
        "diagnostics-lighting",
        "diagnostics-mil",
        "diagnostics-oillife",
        "diagnostics-oilpressure",
        "diagnostics-oiltemperature",
        "diagnostics-telematics",
        "diagnostics-tirepressure",
        "diagnostics-tirepressuremonitoring",
        "diagnostics-transmission",
        "diagnostics-washerfluid",
        "diagnostics-waterinfuel",
        "diagnostics-dtccount",
        "diagnostics-dtclist",
        "hvac-cabintargettemperature",
        "hvac-iscabinhvacactive",
        "hvac-isfrontdefrosteractive",
        "hvac-isreardefrosteractive",
        "hvac-issteeringheateractive",
        "internalcombustionengine-amountremaining",
        "internalcombustionengine-fuellevel",
        "internalcombustionengine-oillife",
        "internalcombustionengine-range",
        "location-isathome",
        "location-preciselocation",
        "lowvoltagebattery-stateofcharge",
        "lowvoltagebattery-status",
        "motion-currentspeed",
        "odometer-traveleddistance",
        "service-isinservice",
        "service-records",
        "surveillance-isenabled",
        "surveillance-brand",
        "tractionbattery-isheateractive",
        "tractionbattery-maxrangechargecounter",
        "tractionbattery-nominalcapacity",
        "tractionbattery-range",
        "tractionbattery-stateofcharge",
        "transmission-gearstate",
        "transmission-drivemode",
        "vehicleidentification-nickname",
        "vehicleidentification-exteriorcolor",
        "vehicleidentification-vin",
        "vehicleidentification-packages",
        "vehicleuseraccount-permissions",
        "vehicleuseraccount-role",
        "wheel-tires",
        "wheel-style",
    ];

    #[test]
    fn every_code_is_the_lowercase_group_and_name_and_unique() {
        let mut seen = HashSet::new();
        for d in all() {
            assert_eq!(
                d.code,
                format!("{}-{}", d.group, d.name).to_lowercase(),
                "{}",
                d.code
            );
            assert!(seen.insert(d.code), "{} twice", d.code);
            assert!(
                d.name.starts_with(|c: char| c.is_ascii_uppercase()),
                "{}",
                d.name
            );
            assert!(
                d.group.starts_with(|c: char| c.is_ascii_uppercase()),
                "{}",
                d.group
            );
        }
    }

    #[test]
    fn every_reference_signal_and_spec_group_is_present() {
        for code in REFERENCE_CODES {
            assert!(lookup(code).is_some(), "{code} missing");
        }
        assert_eq!(all().len(), REFERENCE_CODES.len());
        assert_eq!(groups(), SPEC_GROUPS.to_vec());
        assert_eq!(
            lookup("diagnostics-evhvbattery").unwrap().name,
            "EVHVBattery"
        );
        assert_eq!(
            lookup("hvac-iscabinhvacactive").unwrap().name,
            "IsCabinHVACActive"
        );
        assert_eq!(lookup("vehicleidentification-vin").unwrap().name, "VIN");
        assert!(lookup("nope-nope").is_none());
        assert!(lookup("TractionBattery-StateOfCharge").is_none());
    }

    #[test]
    fn attributes_are_the_documented_static_ones() {
        let attrs: Vec<&str> = all()
            .iter()
            .filter(|d| d.attribute)
            .map(|d| d.code)
            .collect();
        assert_eq!(
            attrs,
            [
                "surveillance-brand",
                "vehicleidentification-exteriorcolor",
                "vehicleidentification-vin",
                "wheel-style"
            ]
        );
    }

    #[test]
    fn unit_value_signals_have_a_unit_from_one_vocabulary() {
        let vocabulary = [
            "kilometers",
            "percent",
            "liters",
            "celsius",
            "kph",
            "volts",
            "amps",
            "watts",
            "kilowatt_hours",
            "count",
            "kilopascals",
        ];
        for d in all() {
            if d.body == BodyKind::UnitValue {
                assert!(d.unit.is_some(), "{}", d.code);
            }
            if let Some(unit) = d.unit {
                assert!(vocabulary.contains(&unit), "{}: {unit}", d.code);
            }
        }
    }

    #[test]
    fn system_ids_are_system_and_upper_snake_names_except_tpms() {
        fn upper_snake(name: &str) -> String {
            let mut out = String::new();
            let chars: Vec<char> = name.chars().collect();
            for (i, c) in chars.iter().enumerate() {
                let boundary = i > 0
                    && c.is_ascii_uppercase()
                    && (chars[i - 1].is_ascii_lowercase()
                        || chars.get(i + 1).is_some_and(|n| n.is_ascii_lowercase()));
                if boundary {
                    out.push('_');
                }
                out.push(c.to_ascii_uppercase());
            }
            out
        }
        let systems: Vec<&SignalDef> = all().iter().filter(|d| d.system_id().is_some()).collect();
        assert_eq!(systems.len(), 21);
        for d in &systems {
            let id = d.system_id().unwrap();
            let expected = match d.code {
                "diagnostics-tirepressuremonitoring" => "SYSTEM_TPMS".to_string(),
                "diagnostics-evhvbattery" => "SYSTEM_EV_HV_BATTERY".to_string(),
                _ => format!("SYSTEM_{}", upper_snake(d.name)),
            };
            assert_eq!(id, expected);
            assert_eq!(d.group, "Diagnostics");
            assert_eq!(by_system_id(&id).map(|s| s.code), Some(d.code));
        }
        for id in [
            "SYSTEM_ABS",
            "SYSTEM_AIRBAG",
            "SYSTEM_ACTIVE_SAFETY",
            "SYSTEM_MIL",
            "SYSTEM_OIL_LIFE",
        ] {
            assert!(by_system_id(id).is_some(), "{id}");
        }
        assert_eq!(lookup("diagnostics-dtclist").unwrap().system_id(), None);
        assert_eq!(lookup("diagnostics-dtccount").unwrap().system_id(), None);
        assert_eq!(lookup("tractionbattery-range").unwrap().system_id(), None);
    }

    fn check(code: &str, body: Value) -> Result<(), String> {
        lookup(code)
            .unwrap_or_else(|| panic!("{code}"))
            .validate_body(&body)
    }

    #[test]
    fn the_reference_examples_validate() {
        let examples = [
            ("charge-amperage", json!({"unit":"amps","value":32})),
            (
                "charge-chargelimits",
                json!({"values":[{"type":"GLOBAL","limit":80,"condition":null},
                    {"type":"LOCATION","limit":90,"condition":{"name":"Home","address":"1 Main St","latitude":37.7,"longitude":-122.4,"connectorType":"J1772"}}],
                    "activeLimit":100,"unit":"percent"}),
            ),
            ("charge-chargeportstatuscolor", json!({"value":"GREEN"})),
            ("charge-chargerate", json!({"unit":"km/h","value":25})),
            (
                "charge-chargerecords",
                json!({"values":[{"id":"r1","cost":{"currency":"USD","energyAmount":4.2,"otherAmount":0},
                    "startTime":"2024-09-01T20:00:00.000Z","endTime":"2024-09-01T23:00:00.000Z",
                    "location":{"name":"Home","address":"1 Main St","latitude":37.7,"longitude":-122.4},
                    "energyAdded":25.5,"connectorType":"J1772","isPublicCharger":false,
                    "startStateOfCharge":20,"endStateOfCharge":80}]}),
            ),
            (
                "charge-chargetimers",
                json!({"values":[{"type":"SCHEDULE","condition":null,"schedules":[{"start":"22:00","end":"06:00","days":["MONDAY"]}],
                    "departureTimers":[{"time":"07:30","days":["MONDAY"]}],"isOEMOptimizationEnabled":true}]}),
            ),
            ("charge-chargerphases", json!({"unit":"count","value":3})),
            ("charge-detailedchargingstatus", json!({"value":"CHARGING"})),
            ("charge-energyadded", json!({"unit":"kWh","value":25.5})),
            ("charge-ischargingcableconnected", json!({"value":true})),
            ("charge-timetocomplete", json!({"value":45})),
            (
                "climate-externaltemperature",
                json!({"unit":"celsius","value":-22.5}),
            ),
            (
                "closure-doors",
                json!({"values":[{"row":0,"column":0,"isOpen":false,"isLocked":true}],"rowCount":2,"columnCount":2}),
            ),
            (
                "closure-windows",
                json!({"values":[{"row":1,"column":1,"isOpen":true}],"rowCount":2,"columnCount":2}),
            ),
            ("closure-sunroof", json!({"isOpen":false})),
            (
                "closure-fronttrunk",
                json!({"isOpen":false,"isLocked":true}),
            ),
            (
                "connectivitysoftware-currentfirmwareversion",
                json!({"value":"2024.4.5"}),
            ),
            (
                "diagnostics-abs",
                json!({"status":"OK","description":"No issues"}),
            ),
            (
                "diagnostics-tirepressuremonitoring",
                json!({"status":"ALERT","description":"Left rear tire sensor battery low"}),
            ),
            ("diagnostics-dtccount", json!({"unit":"count","value":2})),
            (
                "diagnostics-dtclist",
                json!({"values":[{"code":"P0300","timestamp":"2023-10-15T08:00:00Z"}]}),
            ),
            (
                "hvac-cabintargettemperature",
                json!({"unit":"celsius","value":22}),
            ),
            (
                "internalcombustionengine-amountremaining",
                json!({"unit":"liters","value":45.5}),
            ),
            (
                "internalcombustionengine-fuellevel",
                json!({"unit":"percent","value":75}),
            ),
            ("internalcombustionengine-fuellevel", json!({"value":0.77})),
            (
                "location-preciselocation",
                json!({"heading":45.5,"latitude":37.7749,"longitude":-122.4194,"direction":"NE","locationType":"CURRENT"}),
            ),
            (
                "location-preciselocation",
                json!({"latitude":37.7749,"longitude":-122.4194}),
            ),
            ("lowvoltagebattery-status", json!({"value":"GOOD"})),
            ("motion-currentspeed", json!({"unit":"kph","value":65})),
            (
                "odometer-traveleddistance",
                json!({"unit":"km","value":50000}),
            ),
            (
                "service-records",
                json!({"values":[{"id":1,"cost":{"amount":120,"currency":"USD"},"time":"2024-01-15T10:00:00.000Z",
                    "tasks":[{"id":"t1","description":"Tire rotation"}],"details":[{"id":"d1","description":"All four"}],"odometer":32000}]}),
            ),
            ("surveillance-brand", json!({"value":"Sentry Mode"})),
            (
                "tractionbattery-maxrangechargecounter",
                json!({"unit":"count","value":4}),
            ),
            (
                "tractionbattery-nominalcapacity",
                json!({"source":"SMARTCAR","capacity":73.5,"availableCapacities":[{"capacity":73.5,"description":"BEV:Extended Range"}],"unit":"kWh"}),
            ),
            (
                "tractionbattery-range",
                json!({"unit":"kilometers","value":350,"additionalValues":[{"type":"ESTIMATED","value":330}]}),
            ),
            (
                "tractionbattery-stateofcharge",
                json!({"unit":"percent","value":75}),
            ),
            ("transmission-gearstate", json!({"value":"PARK"})),
            (
                "transmission-drivemode",
                json!({"canonical":"NORMAL","oemDisplayName":"everyday"}),
            ),
            (
                "vehicleidentification-vin",
                json!({"value":"5YJ3E1EA7LF000000"}),
            ),
            (
                "vehicleidentification-packages",
                json!({"values":["Performance","Pilot","Plus"]}),
            ),
            (
                "vehicleuseraccount-permissions",
                json!({"values":["vehicle_cmds","vehicle_device_data"]}),
            ),
            ("vehicleuseraccount-role", json!({"value":"Driver"})),
            (
                "wheel-tires",
                json!({"values":[{"row":0,"column":0,"tirePressure":258}],"rowCount":2,"columnCount":2}),
            ),
            (
                "wheel-tires",
                json!({"values":[{"row":0,"column":0,"tirePressure":258}],"rowCount":2,"columnCount":2,"unit":"bar"}),
            ),
        ];
        for (code, body) in examples {
            assert_eq!(check(code, body.clone()), Ok(()), "{code} {body}");
        }
    }

    #[test]
    fn wrong_shapes_are_refused_naming_the_field() {
        let cases = [
            (
                "tractionbattery-stateofcharge",
                json!(78),
                "body must be an object",
            ),
            (
                "tractionbattery-stateofcharge",
                json!({"unit":"percent"}),
                "body.value is required",
            ),
            (
                "tractionbattery-stateofcharge",
                json!({"value":"78"}),
                "body.value must be a number",
            ),
            (
                "tractionbattery-stateofcharge",
                json!({"value":null}),
                "body.value must be a number",
            ),
            (
                "tractionbattery-stateofcharge",
                json!({"unit":5,"value":78}),
                "body.unit must be a string",
            ),
            (
                "tractionbattery-stateofcharge",
                json!({"value":101}),
                "body.value must be from 0 to 100",
            ),
            (
                "tractionbattery-stateofcharge",
                json!({"value":-1}),
                "body.value must be from 0 to 100",
            ),
            (
                "odometer-traveleddistance",
                json!({"value":-3}),
                "body.value must be at least 0",
            ),
            (
                "charge-ischarging",
                json!({"value":"true"}),
                "body.value must be true or false",
            ),
            (
                "charge-detailedchargingstatus",
                json!({"value":"SLEEPING"}),
                "body.value must be one of CHARGING, NOT_CHARGING, FULLY_CHARGED",
            ),
            (
                "vehicleidentification-vin",
                json!({"value":17}),
                "body.value must be a string",
            ),
            (
                "location-preciselocation",
                json!({"longitude":1}),
                "body.latitude is required",
            ),
            (
                "location-preciselocation",
                json!({"latitude":91,"longitude":1}),
                "body.latitude must be from -90 to 90",
            ),
            (
                "location-preciselocation",
                json!({"latitude":1,"longitude":-181}),
                "body.longitude must be from -180 to 180",
            ),
            (
                "location-preciselocation",
                json!({"latitude":"1","longitude":1}),
                "body.latitude must be a number",
            ),
            (
                "location-preciselocation",
                json!({"latitude":1,"longitude":1,"direction":"UP"}),
                "body.direction must be one of",
            ),
            (
                "diagnostics-abs",
                json!({"status":"BROKEN"}),
                "body.status must be one of OK, ALERT",
            ),
            (
                "diagnostics-abs",
                json!({"description":"x"}),
                "body.status is required",
            ),
            (
                "diagnostics-abs",
                json!({"status":"OK","description":4}),
                "body.description must be a string",
            ),
            (
                "diagnostics-dtclist",
                json!({"values":{}}),
                "body.values must be an array",
            ),
            (
                "diagnostics-dtclist",
                json!({}),
                "body.values must be an array",
            ),
            (
                "diagnostics-dtclist",
                json!({"values":["P0300"]}),
                "body.values[0] must be an object",
            ),
            (
                "diagnostics-dtclist",
                json!({"values":[{"timestamp":"2023-10-15T08:00:00Z"}]}),
                "body.values[0].code is required",
            ),
            (
                "diagnostics-dtclist",
                json!({"values":[{"code":"P0300","timestamp":"last week"}]}),
                "body.values[0].timestamp must be an ISO 8601 time",
            ),
            (
                "diagnostics-dtccount",
                json!({"value":1.5}),
                "body.value must be a whole number",
            ),
            (
                "closure-doors",
                json!({"values":[{"row":0}]}),
                "body.values[0].column is required",
            ),
            (
                "closure-doors",
                json!({"values":[{"row":0,"column":-1}]}),
                "body.values[0].column must be at least 0",
            ),
            (
                "closure-fronttrunk",
                json!({"isLocked":true}),
                "body.isOpen is required",
            ),
            (
                "wheel-tires",
                json!({"values":[{"row":0,"column":0,"tirePressure":"high"}]}),
                "body.values[0].tirePressure must be a number",
            ),
            (
                "vehicleuseraccount-permissions",
                json!({"values":[1]}),
                "body.values[0] must be a string",
            ),
            (
                "transmission-drivemode",
                json!({"oemDisplayName":"everyday"}),
                "body.canonical is required",
            ),
            (
                "tractionbattery-range",
                json!({"value":9007199254740993_u64}),
                "body.value cannot be carried exactly",
            ),
            (
                "charge-voltage",
                json!({"value":0.000003}),
                "body.value cannot be carried exactly",
            ),
        ];
        for (code, body, reason) in cases {
            let err = check(code, body.clone()).expect_err(&format!("{code} {body} should fail"));
            assert!(
                err.starts_with(reason),
                "{code} {body}: got {err:?}, want {reason:?}"
            );
        }
    }

    #[test]
    fn extra_fields_are_allowed() {
        assert_eq!(
            check(
                "tractionbattery-stateofcharge",
                json!({"unit":"percent","value":78,"source":"oem"})
            ),
            Ok(())
        );
        assert_eq!(
            check("closure-sunroof", json!({"isOpen":true,"tilt":3})),
            Ok(())
        );
        assert_eq!(
            check(
                "diagnostics-dtclist",
                json!({"values":[{"code":"P0300","timestamp":"2023-10-15T08:00:00Z","severity":"HIGH"}]})
            ),
            Ok(())
        );
    }

    #[test]
    fn normalize_puts_the_catalog_unit_first_and_writes_whole_numbers_as_integers() {
        let soc = lookup("tractionbattery-stateofcharge").unwrap();
        let normalized = soc.normalize_body(&json!({"value": 78.0}));
        assert_eq!(normalized.to_string(), r#"{"unit":"percent","value":78}"#);
        let given = soc.normalize_body(&json!({"unit":"percent","value":78.5}));
        assert_eq!(given.to_string(), r#"{"unit":"percent","value":78.5}"#);
        let loc = lookup("location-preciselocation").unwrap();
        assert_eq!(
            loc.normalize_body(&json!({"latitude":1.0,"longitude":2.5}))
                .to_string(),
            r#"{"latitude":1,"longitude":2.5}"#
        );
    }

    #[test]
    fn name_group_falls_back_to_the_parts_of_an_unknown_code() {
        assert_eq!(
            name_group("tractionbattery-stateofcharge"),
            ("StateOfCharge", "TractionBattery")
        );
        assert_eq!(name_group("custom-thing"), ("thing", "custom"));
    }
}
