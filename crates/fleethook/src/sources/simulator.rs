//! The fleet simulator's model: believable vehicles that drive, charge, refuel and break down
//! on the platform clock, as a pure function of a seed and the times they are asked about.
//!
//! # What it models
//!
//! Each vehicle lives in one of a few real cities (San Francisco, Austin, Berlin, Toronto,
//! London, Munich) with a home, and for most a workplace, nearby. Local time is the platform's
//! UTC shifted by the home's longitude (solar time), so "night" is night where the car is.
//!
//! - **Trips**: commuters drive to work on weekday mornings and home in the late afternoon;
//!   everyone runs errands (a few km, a short dwell, back home) and now and then takes a road
//!   trip of 120–220 km. A trip follows a two-leg path (a dog-leg through a via point, as roads
//!   do) at urban, suburban or highway speeds, slowing near the destination and stopping at
//!   red lights. Each one-minute step moves the car `speed × 1 min` along the path, and the
//!   odometer grows by exactly the distance moved.
//! - **Energy**: EVs and plug-in hybrids drain their battery per km (15–25 kWh/100 km,
//!   more on the highway and in the cold); hybrids fall back to fuel at 12 %; combustion cars
//!   burn fuel per km and wear their oil. EVs and hybrids plug in when they get home in the
//!   evening (or when low) and charge to their limit (EVs 80–90 %, hybrids 100 %), then show
//!   `FULLY_CHARGED` until they unplug to leave. EVs that run low on a trip stop at a DC fast
//!   charger up to 80 %; tanks below 10 % stop at a fuel station.
//! - **Wear and faults**: tires sit at 230–250 kPa (a few kPa more when warm) and now and then
//!   one leaks slowly until it is reinflated; diagnostic trouble codes become active and clear
//!   hours or days later; systems (TPMS sensor battery, washer fluid, bulbs, radar, battery
//!   conditioning, charging) go to `ALERT` and back to `OK`; low tire pressure, due oil changes
//!   and powertrain codes raise their own systems (tire pressure, oil life, MIL).
//! - **Connection errors**: now and then the owner's connected-services credentials stop
//!   working (`CONNECTED_SERVICES_ACCOUNT`/`AUTHENTICATION_FAILED`) for a few hours. Like a
//!   real vehicle behind a broken account, it then delivers no data: the state keeps evolving
//!   and every change is reported when the error resolves.
//!
//! Rare events are drawn as exponential waiting times (so a step costs the same whether an
//! event is due or not) with rates that make each kind show up within a few simulated hours
//! across a fleet of about twenty vehicles, while staying occasional per vehicle.
//!
//! # Determinism
//!
//! Nothing here reads a clock, a global RNG or any I/O: the caller passes platform time in and
//! applies the output (the runner writes it through the same path as the ingest API).
//! Randomness comes from a self-contained SplitMix64 generator seeded per vehicle from
//! (fleet seed, vehicle index, purpose), so vehicle `k` is the same in a fleet of 5 or of a
//! million, and histories do not change with a dependency's RNG version. Simulated time moves
//! in one-minute ticks aligned to the epoch, so the history is the same whatever cadence
//! [`SimVehicle::advance`] is called at (every minute, or once after a six-hour jump), up to
//! the cap: a jump of more than a day fast-forwards (parked, no new events) to a day before the
//! target and simulates that day minute by minute, so any jump costs at most 1,440 steps.
//!
//! # Size
//!
//! A vehicle is a flat struct of a few hundred bytes with no heap allocation (the make and
//! model strings stay in the [`SimVehicleSpec`]); last-reported values are kept quantized, the
//! way they are emitted, so "changed since the last advance" is a field comparison.

use std::collections::HashMap;

use fleethook_wire::json::number;
use fleethook_wire::signal::SignalValue;
use fleethook_wire::time::iso_millis;
use serde_json::{json, Value};

use crate::model::VehicleErrorState;

/// One simulation step: platform time advances in one-minute ticks aligned to the epoch.
const TICK: i64 = 60_000;
/// The most steps one advance simulates; a longer jump fast-forwards the rest.
const MAX_STEPS: i64 = 24 * 60;
const HOUR_MS: f64 = 3_600_000.0;
const TICK_HOURS: f64 = 1.0 / 60.0;
/// Kilometres per degree of latitude (Earth radius 6,371 km).
const KM_PER_DEG: f64 = 111.195;
/// The fastest any vehicle drives, km/h.
const MAX_SPEED_KPH: f64 = 130.0;

// Mean waiting times (hours) between rare events of one vehicle. With ~20 vehicles a fleet
// sees a trouble code and a system alert about every 1.5 hours, a credential failure about
// every 2 hours: visible in a demo's first minute at 300–3600×, yet each car's own record
// stays that of a car with an occasional problem.
const DTC_MEAN_H: f64 = 30.0;
const ALERT_MEAN_H: f64 = 30.0;
const CONNECTION_ERROR_MEAN_H: f64 = 36.0;
const LEAK_MEAN_H: f64 = 10.0 * 24.0;

/// Below this cold pressure the tire-pressure system alerts.
const TIRE_LOW_KPA: f32 = 200.0;
/// Below this oil life the oil-life system alerts and a service gets booked.
const OIL_LOW_PCT: f32 = 15.0;
/// Plug-in hybrids drive electrically down to this state of charge, then burn fuel.
const PHEV_HOLD_PCT: f64 = 12.0;
/// DC fast charging stops here: the charge curve flattens beyond it.
const FAST_CHARGE_TARGET_PCT: f64 = 80.0;

/// What moves a vehicle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Powertrain {
    /// Battery electric: traction battery and charging, no engine.
    Electric,
    /// Plug-in hybrid: a small traction battery first, then the engine.
    PluginHybrid,
    /// Internal combustion only.
    Combustion,
}

impl Powertrain {
    fn has_battery(self) -> bool {
        self != Powertrain::Combustion
    }

    fn has_engine(self) -> bool {
        self != Powertrain::Electric
    }
}

/// The identity of one simulated vehicle: what the platform registers it as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimVehicleSpec {
    /// Position in the fleet; with the fleet seed it determines everything else.
    pub index: u32,
    /// Upper case, as Smartcar reports it (`TESLA`).
    pub make: String,
    pub model: String,
    pub year: i32,
    /// 17 characters without I, O or Q, with a valid check digit (position 9); unique within a
    /// fleet for its first 3.3 million vehicles.
    pub vin: String,
    pub powertrain: Powertrain,
}

/// What one [`SimVehicle::advance`] produced, to apply like an ingest request.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SimUpdate {
    /// The signals whose reported value changed since the last advance (every signal the
    /// vehicle has on the first). Empty while a connection error withholds data.
    pub signals: Vec<SignalValue>,
    /// `Some(full active set)` when the set of active errors changed since the last advance
    /// (always on the first, so a restarted runner's view is authoritative), else `None`.
    pub errors: Option<Vec<VehicleErrorState>>,
}

// ---------------------------------------------------------------------------------------------
// Randomness

const GOLDEN_GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;
const STREAM_SPEC: u64 = 1;
const STREAM_STATE: u64 = 2;
const STREAM_WEATHER: u64 = 3;

/// SplitMix64's output function: a strong 64-bit mixer.
fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A stream key from the fleet seed, a vehicle (or city) index and a purpose, so that every
/// vehicle and purpose has its own independent stream.
fn stream_key(seed: u64, index: u64, purpose: u64) -> u64 {
    let a = mix64(seed ^ 0x6A09_E667_F3BC_C909);
    let b = mix64(a ^ index.wrapping_mul(GOLDEN_GAMMA));
    mix64(b ^ purpose.wrapping_mul(0xD1B5_4A32_D192_ED03))
}

/// SplitMix64 (Steele, Lea and Flood, 2014): eight bytes of state, statistically sound for a
/// simulation, and ours, so histories never change with a dependency's version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64, index: u32, purpose: u64) -> Rng {
        Rng(stream_key(seed, u64::from(index), purpose))
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(GOLDEN_GAMMA);
        mix64(self.0)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }

    /// Uniform in 0..n (n small).
    fn below(&mut self, n: usize) -> usize {
        (((self.next_u64() >> 32) * n as u64) >> 32) as usize
    }

    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// An exponential waiting time with this mean, in milliseconds, at least one tick.
    fn wait_ms(&mut self, mean_hours: f64) -> i64 {
        let hours = -(1.0 - self.unit()).ln() * mean_hours;
        ((hours * HOUR_MS) as i64).max(TICK)
    }

    /// A duration uniform between `lo` and `hi` hours, in milliseconds.
    fn hours_ms(&mut self, lo: f64, hi: f64) -> i64 {
        (self.range(lo, hi) * HOUR_MS) as i64
    }
}

// ---------------------------------------------------------------------------------------------
// Vehicles and places

/// A model the fleet is drawn from, with what the physics needs.
struct ModelDef {
    make: &'static str,
    model: &'static str,
    powertrain: Powertrain,
    /// Relative frequency within its powertrain.
    weight: u32,
    years: (i32, i32),
    /// VIN positions 1–8 (manufacturer and vehicle descriptor).
    vin_prefix: &'static str,
    /// VIN position 11.
    plant: char,
    battery_kwh: f64,
    kwh_per_100km: f64,
    tank_l: f64,
    l_per_100km: f64,
    /// Home (AC) charging power.
    ac_kw: f64,
    /// Average DC fast-charging power; 0 for vehicles that do not fast charge.
    dc_kw: f64,
}

/// An electric model: `battery` is (kWh, kWh/100 km), `charging` (AC kW, DC kW).
const fn ev(
    (make, model): (&'static str, &'static str),
    weight: u32,
    years: (i32, i32),
    (vin_prefix, plant): (&'static str, char),
    battery: (f64, f64),
    charging: (f64, f64),
) -> ModelDef {
    ModelDef {
        make,
        model,
        powertrain: Powertrain::Electric,
        weight,
        years,
        vin_prefix,
        plant,
        battery_kwh: battery.0,
        kwh_per_100km: battery.1,
        tank_l: 0.0,
        l_per_100km: 0.0,
        ac_kw: charging.0,
        dc_kw: charging.1,
    }
}

/// A plug-in hybrid: `battery` is (kWh, kWh/100 km), `fuel` (tank l, l/100 km).
const fn phev(
    (make, model): (&'static str, &'static str),
    weight: u32,
    years: (i32, i32),
    (vin_prefix, plant): (&'static str, char),
    battery: (f64, f64),
    fuel: (f64, f64),
    ac_kw: f64,
) -> ModelDef {
    ModelDef {
        make,
        model,
        powertrain: Powertrain::PluginHybrid,
        weight,
        years,
        vin_prefix,
        plant,
        battery_kwh: battery.0,
        kwh_per_100km: battery.1,
        tank_l: fuel.0,
        l_per_100km: fuel.1,
        ac_kw,
        dc_kw: 0.0,
    }
}

/// A combustion model: `fuel` is (tank l, l/100 km).
const fn ice(
    (make, model): (&'static str, &'static str),
    weight: u32,
    years: (i32, i32),
    (vin_prefix, plant): (&'static str, char),
    fuel: (f64, f64),
) -> ModelDef {
    ModelDef {
        make,
        model,
        powertrain: Powertrain::Combustion,
        weight,
        years,
        vin_prefix,
        plant,
        battery_kwh: 0.0,
        kwh_per_100km: 0.0,
        tank_l: fuel.0,
        l_per_100km: fuel.1,
        ac_kw: 0.0,
        dc_kw: 0.0,
    }
}

/// The models, grouped by powertrain. VIN prefixes follow each maker's real pattern.
static MODELS: &[ModelDef] = &[
    ev(
        ("TESLA", "Model 3"),
        5,
        (2019, 2024),
        ("5YJ3E1EA", 'F'),
        (75.0, 15.0),
        (11.0, 110.0),
    ),
    ev(
        ("TESLA", "Model Y"),
        6,
        (2021, 2025),
        ("7SAYGDEE", 'F'),
        (75.0, 16.5),
        (11.0, 110.0),
    ),
    ev(
        ("FORD", "Mustang Mach-E"),
        3,
        (2021, 2024),
        ("3FMTK3SU", 'M'),
        (88.0, 19.5),
        (10.5, 90.0),
    ),
    ev(
        ("HYUNDAI", "IONIQ 5"),
        3,
        (2022, 2025),
        ("KM8KRDAF", 'U'),
        (77.4, 18.0),
        (10.9, 150.0),
    ),
    ev(
        ("KIA", "EV6"),
        2,
        (2022, 2025),
        ("KNDC4DLC", '5'),
        (77.4, 17.5),
        (10.9, 150.0),
    ),
    ev(
        ("CHEVROLET", "Bolt EV"),
        2,
        (2020, 2023),
        ("1G1FY6S0", '4'),
        (65.0, 16.0),
        (7.2, 45.0),
    ),
    ev(
        ("VOLKSWAGEN", "ID.4"),
        2,
        (2023, 2024),
        ("1V2VMPE8", 'C'),
        (77.0, 18.5),
        (11.0, 100.0),
    ),
    phev(
        ("TOYOTA", "RAV4 Prime"),
        4,
        (2021, 2024),
        ("JTMEB3FV", 'D'),
        (18.1, 20.0),
        (55.0, 6.0),
        6.6,
    ),
    phev(
        ("BMW", "X5 xDrive50e"),
        2,
        (2024, 2025),
        ("5UX43EU0", '9'),
        (25.7, 24.0),
        (69.0, 9.5),
        7.4,
    ),
    phev(
        ("CHRYSLER", "Pacifica Hybrid"),
        2,
        (2021, 2024),
        ("2C4RC1N7", 'R'),
        (16.0, 25.0),
        (62.0, 8.4),
        6.6,
    ),
    ice(
        ("FORD", "F-150"),
        4,
        (2019, 2024),
        ("1FTFW1E5", 'F'),
        (98.0, 12.4),
    ),
    ice(
        ("TOYOTA", "Camry"),
        3,
        (2019, 2024),
        ("4T1G11AK", 'U'),
        (60.0, 7.0),
    ),
    ice(
        ("HONDA", "Civic"),
        3,
        (2022, 2025),
        ("2HGFE2F5", 'H'),
        (47.0, 6.5),
    ),
    ice(
        ("TOYOTA", "Corolla"),
        2,
        (2020, 2024),
        ("5YFB4MDE", 'P'),
        (50.0, 6.2),
    ),
    ice(
        ("VOLKSWAGEN", "Golf"),
        2,
        (2020, 2024),
        ("WVWZZZCD", 'W'),
        (50.0, 5.8),
    ),
];

/// A city vehicles live around.
struct City {
    lat: f64,
    lon: f64,
    /// Homes, workplaces and errands lie within this distance of the centre.
    radius_km: f64,
    /// Bearings (degrees, may pass 360) road trips leave in: over land, not into the sea.
    road_trip_bearings: (f64, f64),
    mean_temp_c: f64,
    seasonal_swing_c: f64,
    daily_swing_c: f64,
}

static CITIES: &[City] = &[
    // San Francisco
    City {
        lat: 37.7599,
        lon: -122.437,
        radius_km: 5.0,
        road_trip_bearings: (100.0, 140.0),
        mean_temp_c: 14.5,
        seasonal_swing_c: 3.0,
        daily_swing_c: 4.0,
    },
    // Austin
    City {
        lat: 30.2672,
        lon: -97.7431,
        radius_km: 14.0,
        road_trip_bearings: (0.0, 360.0),
        mean_temp_c: 21.0,
        seasonal_swing_c: 8.0,
        daily_swing_c: 6.0,
    },
    // Berlin
    City {
        lat: 52.52,
        lon: 13.405,
        radius_km: 12.0,
        road_trip_bearings: (0.0, 360.0),
        mean_temp_c: 10.0,
        seasonal_swing_c: 9.0,
        daily_swing_c: 5.0,
    },
    // Toronto (the lake is to the south)
    City {
        lat: 43.7001,
        lon: -79.4163,
        radius_km: 9.0,
        road_trip_bearings: (260.0, 380.0),
        mean_temp_c: 8.0,
        seasonal_swing_c: 13.0,
        daily_swing_c: 5.0,
    },
    // London
    City {
        lat: 51.5072,
        lon: -0.1276,
        radius_km: 12.0,
        road_trip_bearings: (260.0, 380.0),
        mean_temp_c: 11.5,
        seasonal_swing_c: 6.0,
        daily_swing_c: 5.0,
    },
    // Munich
    City {
        lat: 48.1374,
        lon: 11.5755,
        radius_km: 10.0,
        road_trip_bearings: (0.0, 360.0),
        mean_temp_c: 9.0,
        seasonal_swing_c: 9.0,
        daily_swing_c: 6.0,
    },
];

/// The diagnostics systems the simulator reports, by index.
const SYSTEMS: [&str; 10] = [
    "diagnostics-tirepressure",
    "diagnostics-tirepressuremonitoring",
    "diagnostics-washerfluid",
    "diagnostics-lighting",
    "diagnostics-brakefluid",
    "diagnostics-driverassistance",
    "diagnostics-evbatteryconditioning",
    "diagnostics-evcharging",
    "diagnostics-oillife",
    "diagnostics-mil",
];
const SYS_TIRE_PRESSURE: usize = 0;
const SYS_TPMS: usize = 1;
const SYS_WASHER_FLUID: usize = 2;
const SYS_LIGHTING: usize = 3;
const SYS_BRAKE_FLUID: usize = 4;
const SYS_DRIVER_ASSISTANCE: usize = 5;
const SYS_EV_BATTERY_CONDITIONING: usize = 6;
const SYS_EV_CHARGING: usize = 7;
const SYS_OIL_LIFE: usize = 8;
const SYS_MIL: usize = 9;

fn supports_system(powertrain: Powertrain, system: usize) -> bool {
    match system {
        SYS_EV_BATTERY_CONDITIONING | SYS_EV_CHARGING => powertrain.has_battery(),
        SYS_OIL_LIFE | SYS_MIL => powertrain.has_engine(),
        _ => true,
    }
}

/// Alert descriptions; the first four are the tire-pressure alerts, by tire.
const DESCRIPTIONS: [&str; 17] = [
    "Left front tire pressure low",
    "Right front tire pressure low",
    "Left rear tire pressure low",
    "Right rear tire pressure low",
    "Oil change due soon",
    "Check engine light on",
    "Left rear tire sensor battery low",
    "Right front tire sensor battery low",
    "Tire pressure sensor not responding",
    "Washer fluid low",
    "Right brake light bulb out",
    "Left low beam bulb out",
    "Brake fluid level low",
    "Front radar sensor blocked",
    "Front camera view obstructed",
    "Battery conditioning unavailable",
    "Charging system service required",
];
const DESC_OIL_LIFE: u8 = 4;
const DESC_MIL: u8 = 5;
/// A system with no alert shows this: the same words Smartcar's samples use.
const OK_DESCRIPTION: &str = "No issues";

/// Alerts that come and go at random: (system, description).
const RANDOM_ALERTS: [(usize, u8); 11] = [
    (SYS_TPMS, 6),
    (SYS_TPMS, 7),
    (SYS_TPMS, 8),
    (SYS_WASHER_FLUID, 9),
    (SYS_LIGHTING, 10),
    (SYS_LIGHTING, 11),
    (SYS_BRAKE_FLUID, 12),
    (SYS_DRIVER_ASSISTANCE, 13),
    (SYS_DRIVER_ASSISTANCE, 14),
    (SYS_EV_BATTERY_CONDITIONING, 15),
    (SYS_EV_CHARGING, 16),
];

/// Trouble codes, with the powertrains that can raise them.
const DTCS: [(&str, &[Powertrain]); 14] = {
    use Powertrain::{Combustion as C, Electric as E, PluginHybrid as H};
    [
        ("P0300", &[C, H]), // random/multiple cylinder misfire
        ("P0420", &[C, H]), // catalyst efficiency below threshold
        ("P0171", &[C, H]), // system too lean
        ("P0128", &[C, H]), // coolant below thermostat temperature
        ("P0442", &[C, H]), // small EVAP leak
        ("P0455", &[C]),    // large EVAP leak
        ("P0A80", &[H]),    // replace hybrid battery pack
        ("P0AA6", &[E, H]), // high-voltage isolation fault
        ("P0AFA", &[E]),    // hybrid/EV battery system voltage low
        ("P302D", &[C, E, H]),
        ("C1201", &[C, E, H]), // engine/powertrain control system malfunction (chassis)
        ("U0100", &[C, E, H]), // lost communication with ECM/PCM
        ("U0293", &[E, H]),    // lost communication with hybrid/EV powertrain module
        ("B1318", &[C, E, H]), // battery voltage low
    ]
};

const CONNECTION_ERROR_DESCRIPTION: &str = "The vehicle owner's connected services account \
credentials are no longer valid (the password was changed); the owner must re-authenticate \
before data can be retrieved again.";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    Home,
    Work,
    Errand,
    /// A road trip's destination, far from home.
    Away,
    /// Wherever a fast-forward found the car on the road.
    Roadside,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Parked,
    Driving,
    /// Stopped mid-trip at a DC fast charger.
    FastCharging,
    /// Stopped mid-trip at a fuel station, until `stop_until`.
    Refuelling,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Dtc {
    /// Index into [`DTCS`].
    code: u8,
    since: i64,
    until: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Alert {
    /// Index into [`SYSTEMS`].
    system: u8,
    /// Index into [`DESCRIPTIONS`].
    description: u8,
    until: i64,
}

/// Every reported value, quantized the way it is emitted: two readings differ exactly when a
/// signal body would.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Readings {
    lat_micro: i32,
    lon_micro: i32,
    heading: u16,
    speed: u16,
    odometer_tenths: u32,
    driving: bool,
    locked: bool,
    asleep: bool,
    at_home: bool,
    cable: bool,
    charging: bool,
    fast_charger: bool,
    soc: u8,
    charge_limit: u8,
    ev_range: u16,
    minutes_to_full: u16,
    fuel_pct: u8,
    oil_pct: u8,
    fuel_dl: u16,
    ice_range: u16,
    tires: [u16; 4],
    temp_half_c: i16,
    lv_soc: u8,
    /// Status of each of [`SYSTEMS`]: 0 is OK, else 1 + the description's index.
    systems: [u8; 10],
    /// Active codes ordered by activation: (index into [`DTCS`], since).
    dtcs: [Option<(u8, i64)>; 2],
}

/// The evolving state of one simulated vehicle. Create with [`SimVehicle::new`], then call
/// [`SimVehicle::advance`] with increasing platform times.
#[derive(Debug, Clone, PartialEq)]
pub struct SimVehicle {
    rng: Rng,
    weather_key: u64,
    /// The state describes this instant (a tick boundary).
    t: i64,
    powertrain: Powertrain,
    model: u8,
    city: u8,
    commuter: bool,
    /// The spec's VIN when it is a 17-character one (a vehicle registered without a VIN, or
    /// with an odd one, reports none rather than a made-up one).
    vin: Option<[u8; 17]>,
    /// Fixed points and path targets in single precision (0.6 m at worst): it keeps the
    /// struct small; the moving position needs double precision for one-minute steps.
    home: [f32; 2],
    work: [f32; 2],
    via: [f32; 2],
    dest: [f32; 2],
    pos: [f64; 2],
    mode: Mode,
    place: Place,
    next_place: Place,
    on_first_leg: bool,
    road_trip: bool,
    plugged: bool,
    charge_limit: u8,
    leaking_tire: Option<u8>,
    cruise_kph: f32,
    speed_kph: f32,
    heading: f32,
    oil_pct: f32,
    lv_soc: f32,
    temp_offset_c: f32,
    tire_nominal_kpa: f32,
    tire_cold_kpa: [f32; 4],
    tire_heat: f32,
    leak_kpa_per_h: f32,
    odometer_km: f64,
    soc: f64,
    fuel_l: f64,
    parked_since: i64,
    next_depart: i64,
    stop_until: i64,
    leak_fix_at: i64,
    oil_service_at: i64,
    next_dtc_at: i64,
    next_alert_at: i64,
    next_connection_error_at: i64,
    next_leak_at: i64,
    connection_error_until: Option<i64>,
    dtcs: [Option<Dtc>; 2],
    alerts: [Option<Alert>; 2],
    /// What the last advance reported; `None` before the first.
    reported: Option<Readings>,
    reported_connection_error: Option<bool>,
}

// ---------------------------------------------------------------------------------------------
// Fleet

/// The first `count` vehicles of the fleet with this seed. Vehicle `k` is the same whatever
/// `count` is.
pub fn fleet_spec(seed: u64, count: u32) -> Vec<SimVehicleSpec> {
    (0..count).map(|index| vehicle_spec(seed, index)).collect()
}

/// Vehicle `index` of the fleet with this seed: about 60 % electric, 15 % plug-in hybrid and
/// 25 % combustion, with believable makes, models, years and VINs.
pub fn vehicle_spec(seed: u64, index: u32) -> SimVehicleSpec {
    let mut rng = Rng::new(seed, index, STREAM_SPEC);
    let u = rng.unit();
    let powertrain = if u < 0.60 {
        Powertrain::Electric
    } else if u < 0.75 {
        Powertrain::PluginHybrid
    } else {
        Powertrain::Combustion
    };
    let candidates = MODELS.iter().filter(|m| m.powertrain == powertrain);
    let total: u32 = candidates.clone().map(|m| m.weight).sum();
    let mut pick = rng.below(total as usize) as u32;
    let def = candidates
        .into_iter()
        .find(|m| {
            if pick < m.weight {
                true
            } else {
                pick -= m.weight;
                false
            }
        })
        .expect("the weights cover the pick");
    let year = def.years.0 + rng.below((def.years.1 - def.years.0 + 1) as usize) as i32;
    SimVehicleSpec {
        index,
        make: def.make.to_string(),
        model: def.model.to_string(),
        year,
        vin: make_vin(def, year, serial(seed, index)),
        powertrain,
    }
}

/// VIN serials (position 12 alphanumeric, 13–17 digits, as high-volume makers write them).
const SERIALS: u64 = 33 * 100_000;
const VIN_ALPHABET: &[u8; 33] = b"0123456789ABCDEFGHJKLMNPRSTUVWXYZ";

/// A serial number that is a bijection of the index over [0, SERIALS), keyed by the seed, so
/// VINs are unique within a fleet (the store requires it) yet look unordered.
fn serial(seed: u64, index: u32) -> u64 {
    let key = stream_key(seed, 0, STREAM_SPEC);
    // A multiplier coprime with SERIALS = 2^5 · 3 · 5^5 · 11 makes x ↦ a·x + b a permutation.
    let mut a = (key % SERIALS) | 1;
    while gcd(a, SERIALS) != 1 {
        a += 2;
    }
    let b = (key >> 32) % SERIALS;
    (a * (u64::from(index) % SERIALS) + b) % SERIALS
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

fn make_vin(def: &ModelDef, year: i32, serial: u64) -> String {
    let mut vin = [b'0'; 17];
    vin[..8].copy_from_slice(def.vin_prefix.as_bytes());
    vin[9] = model_year_code(year);
    vin[10] = def.plant as u8;
    vin[11] = VIN_ALPHABET[(serial / 100_000) as usize];
    let digits = format!("{:05}", serial % 100_000);
    vin[12..].copy_from_slice(digits.as_bytes());
    vin[8] = vin_check_digit(&vin);
    String::from_utf8(vin.to_vec()).expect("VIN characters are ASCII")
}

/// VIN position 10: the model year (A = 2010 … Y = 2030, skipping I, O, Q, U, Z).
fn model_year_code(year: i32) -> u8 {
    const CODES: &[u8; 21] = b"ABCDEFGHJKLMNPRSTVWXY";
    CODES[(year - 2010).clamp(0, 20) as usize]
}

/// The check digit (position 9) of North American VINs.
fn vin_check_digit(vin: &[u8; 17]) -> u8 {
    const WEIGHTS: [u32; 17] = [8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2];
    let value = |c: u8| -> u32 {
        match c {
            b'0'..=b'9' => u32::from(c - b'0'),
            b'A'..=b'H' => u32::from(c - b'A') + 1,
            b'J'..=b'N' => u32::from(c - b'J') + 1,
            b'P' => 7,
            b'R' => 9,
            b'S'..=b'Z' => u32::from(c - b'S') + 2,
            _ => 0,
        }
    };
    let sum: u32 = vin.iter().zip(WEIGHTS).map(|(&c, w)| value(c) * w).sum();
    match sum % 11 {
        10 => b'X',
        n => b'0' + n as u8,
    }
}

// ---------------------------------------------------------------------------------------------
// Geometry (a local flat-earth approximation: steps are at most a few km)

fn dist_bearing(from: [f64; 2], to: [f64; 2]) -> (f64, f64) {
    let dy = (to[0] - from[0]) * KM_PER_DEG;
    let dx = (to[1] - from[1]) * KM_PER_DEG * ((from[0] + to[0]) / 2.0).to_radians().cos();
    let bearing = dx.atan2(dy).to_degrees().rem_euclid(360.0);
    (dx.hypot(dy), bearing)
}

fn offset(from: [f64; 2], bearing_deg: f64, km: f64) -> [f64; 2] {
    let b = bearing_deg.to_radians();
    let lat = from[0] + km * b.cos() / KM_PER_DEG;
    let lon = from[1] + km * b.sin() / (KM_PER_DEG * ((from[0] + lat) / 2.0).to_radians().cos());
    [lat, lon]
}

/// `p`, pulled back towards the centre if it lies beyond `factor` times the city's radius:
/// trips stay in town (and out of the bay).
fn within_city(city: &City, p: [f64; 2], factor: f64) -> [f64; 2] {
    let center = [city.lat, city.lon];
    let (d, b) = dist_bearing(center, p);
    let max = city.radius_km * factor;
    if d > max {
        offset(center, b, max)
    } else {
        p
    }
}

fn narrow(p: [f64; 2]) -> [f32; 2] {
    [p[0] as f32, p[1] as f32]
}

fn wide(p: [f32; 2]) -> [f64; 2] {
    [f64::from(p[0]), f64::from(p[1])]
}

fn direction(heading: u16) -> &'static str {
    const NAMES: [&str; 8] = ["N", "NE", "E", "SE", "S", "SW", "W", "NW"];
    NAMES[((f64::from(heading) + 22.5) / 45.0) as usize % 8]
}

// ---------------------------------------------------------------------------------------------
// The vehicle

impl SimVehicle {
    /// The vehicle of `spec` in the fleet with this seed, parked at home at platform time
    /// `start` (epoch ms): home in one of the cities, odometer, charge, fuel and oil as a car
    /// of its age would have.
    pub fn new(spec: &SimVehicleSpec, seed: u64, start: i64) -> SimVehicle {
        let mut rng = Rng::new(seed, spec.index, STREAM_STATE);
        // The physics of the known model, else of a typical one of the same powertrain (for
        // vehicles registered outside the fleet, whose powertrain the caller guessed).
        let model = MODELS
            .iter()
            .position(|m| {
                m.make == spec.make && m.model == spec.model && m.powertrain == spec.powertrain
            })
            .or_else(|| MODELS.iter().position(|m| m.powertrain == spec.powertrain))
            .unwrap_or(0);
        let def = &MODELS[model];
        let city_index = rng.below(CITIES.len());
        let city = &CITIES[city_index];
        let center = [city.lat, city.lon];
        let home = offset(
            center,
            rng.range(0.0, 360.0),
            city.radius_km * rng.unit().sqrt(),
        );
        // A workplace a real commute away, in town or its near suburbs.
        let work = within_city(
            city,
            offset(
                home,
                rng.range(0.0, 360.0),
                rng.range(8.0, (2.0 * city.radius_km).max(14.0)),
            ),
            1.6,
        );
        let t = start.div_euclid(TICK) * TICK;
        let year_now = 1970.0 + t as f64 / (365.25 * 24.0 * HOUR_MS);
        let age_years = (year_now - f64::from(spec.year)).max(0.0) + rng.range(0.1, 0.9);
        let vin = <[u8; 17]>::try_from(spec.vin.as_bytes())
            .ok()
            .filter(|v| v.iter().all(u8::is_ascii_alphanumeric));
        let nominal = rng.range(230.0, 250.0) as f32;
        let mut tires = [nominal; 4];
        for tire in &mut tires {
            *tire += rng.range(-3.0, 3.0) as f32;
        }
        let charge_limit = match spec.powertrain {
            Powertrain::Electric => [80, 85, 90][rng.below(3)],
            _ => 100,
        };
        let mut v = SimVehicle {
            weather_key: stream_key(seed, city_index as u64, STREAM_WEATHER),
            t,
            powertrain: spec.powertrain,
            model: model as u8,
            city: city_index as u8,
            commuter: rng.chance(0.75),
            vin,
            home: narrow(home),
            work: narrow(work),
            via: narrow(home),
            dest: narrow(home),
            pos: wide(narrow(home)),
            mode: Mode::Parked,
            place: Place::Home,
            next_place: Place::Home,
            on_first_leg: false,
            road_trip: false,
            plugged: false,
            charge_limit,
            leaking_tire: None,
            cruise_kph: 0.0,
            speed_kph: 0.0,
            heading: rng.range(0.0, 360.0) as f32,
            oil_pct: rng.range(8.0, 100.0) as f32,
            lv_soc: rng.range(86.0, 98.0) as f32,
            temp_offset_c: rng.range(-0.8, 0.8) as f32,
            tire_nominal_kpa: nominal,
            tire_cold_kpa: tires,
            tire_heat: 0.0,
            leak_kpa_per_h: 0.0,
            odometer_km: age_years * rng.range(9_000.0, 18_000.0),
            soc: if def.battery_kwh > 0.0 {
                rng.range(35.0, f64::from(charge_limit))
            } else {
                0.0
            },
            fuel_l: def.tank_l * rng.range(0.25, 0.95),
            parked_since: t - rng.hours_ms(1.0, 10.0),
            next_depart: t,
            stop_until: 0,
            leak_fix_at: i64::MAX,
            oil_service_at: i64::MAX,
            next_dtc_at: t,
            next_alert_at: t,
            next_connection_error_at: t,
            next_leak_at: t,
            connection_error_until: None,
            dtcs: [None; 2],
            alerts: [None; 2],
            reported: None,
            reported_connection_error: None,
            rng,
        };
        v.next_dtc_at = t + v.rng.wait_ms(DTC_MEAN_H);
        v.next_alert_at = t + v.rng.wait_ms(ALERT_MEAN_H);
        v.next_connection_error_at = t + v.rng.wait_ms(CONNECTION_ERROR_MEAN_H);
        v.next_leak_at = t + v.rng.wait_ms(LEAK_MEAN_H);
        let hour = v.local_hour(t);
        if v.powertrain.has_battery() && !(7.0..18.0).contains(&hour) && v.rng.chance(0.7) {
            v.plugged = true;
        }
        v.plan(t);
        v
    }

    /// Carries on from what the store last recorded for this vehicle (after a restart the
    /// model starts from its seed again): the odometer never runs back, and charge and fuel
    /// continue from their recorded levels. Where the car stands is the model's own.
    pub fn resume(&mut self, stored: &HashMap<String, SignalValue>) {
        let value = |code: &str| {
            stored
                .get(code)
                .and_then(|s| s.body.get("value"))
                .and_then(|v| v.as_f64())
        };
        if let Some(km) = value("odometer-traveleddistance") {
            self.odometer_km = self.odometer_km.max(km);
        }
        if let Some(pct) = value("tractionbattery-stateofcharge") {
            if self.soc > 0.0 {
                self.soc = pct.clamp(0.0, 100.0);
            }
        }
        if let Some(liters) = value("internalcombustionengine-amountremaining") {
            if self.fuel_l > 0.0 {
                self.fuel_l = liters.max(0.0);
            }
        }
    }

    /// Moves the state forward to platform time `now` (epoch ms) and reports what changed.
    ///
    /// Any cadence works: the state moves in one-minute steps up to the last whole minute
    /// before `now`; a jump of more than a day fast-forwards the excess. A `now` before the
    /// last one changes nothing.
    pub fn advance(&mut self, now: i64) -> SimUpdate {
        let target = now.div_euclid(TICK) * TICK;
        if target - self.t > MAX_STEPS * TICK {
            self.fast_forward(target - MAX_STEPS * TICK);
        }
        while self.t < target {
            self.step();
        }

        let erroring = self.connection_error_until.is_some();
        let errors = (self.reported_connection_error != Some(erroring)).then(|| {
            self.reported_connection_error = Some(erroring);
            self.active_errors()
        });

        let mut signals = Vec::new();
        // Data flows unless the account is broken; the first advance is always a snapshot so
        // the platform knows every signal the vehicle has.
        if !erroring || self.reported.is_none() {
            let readings = self.readings();
            if self.reported != Some(readings) {
                let oem_updated_at = Some(self.t);
                self.for_each_signal(&readings, self.reported.as_ref(), |code, body| {
                    signals.push(SignalValue {
                        code: code.to_string(),
                        body,
                        oem_updated_at,
                        retrieved_at: now,
                    });
                });
                self.reported = Some(readings);
            }
        }
        SimUpdate { signals, errors }
    }

    /// The codes of every signal this vehicle reports (those of its first advance).
    pub fn signal_codes(&self) -> Vec<&'static str> {
        let mut codes = Vec::new();
        self.for_each_signal(&self.readings(), None, |code, _| codes.push(code));
        codes
    }

    /// The platform time (epoch ms) the state describes: the last whole minute advanced to.
    pub fn time(&self) -> i64 {
        self.t
    }

    fn def(&self) -> &'static ModelDef {
        &MODELS[usize::from(self.model)]
    }

    fn city(&self) -> &'static City {
        &CITIES[usize::from(self.city)]
    }

    /// Solar local time, in hours since the epoch.
    fn local_hours_total(&self, t: i64) -> f64 {
        t as f64 / HOUR_MS + f64::from(self.home[1]) / 15.0
    }

    fn local_hour(&self, t: i64) -> f64 {
        self.local_hours_total(t).rem_euclid(24.0)
    }

    fn local_day(&self, t: i64) -> i64 {
        (self.local_hours_total(t) / 24.0).floor() as i64
    }

    /// Platform time of `hour` (local) on local day `day`.
    fn at_local(&self, day: i64, hour: f64) -> i64 {
        ((day as f64 * 24.0 + hour - f64::from(self.home[1]) / 15.0) * HOUR_MS) as i64
    }

    fn is_weekend(day: i64) -> bool {
        // Day 0 (1970-01-01) was a Thursday.
        (day + 3).rem_euclid(7) >= 5
    }

    // --- the day plan --------------------------------------------------------------------

    /// Decides, on arrival at `self.place` at time `t`, when to leave next and for where.
    fn plan(&mut self, t: i64) {
        let hour = self.local_hour(t);
        let day = self.local_day(t);
        let (depart, next) = match self.place {
            Place::Home => {
                if (7.0..19.0).contains(&hour) && self.rng.chance(0.45) {
                    (t + self.rng.hours_ms(0.5, 3.0), Place::Errand)
                } else {
                    self.morning(if hour < 6.0 { day } else { day + 1 })
                }
            }
            Place::Work => {
                let depart = if hour < 15.0 {
                    {
                        let hour = self.rng.range(16.25, 18.5);
                        self.at_local(day, hour)
                    }
                } else {
                    t + self.rng.hours_ms(0.5, 1.5)
                };
                let next = if self.rng.chance(0.2) {
                    Place::Errand
                } else {
                    Place::Home
                };
                (depart, next)
            }
            Place::Errand | Place::Roadside => (t + self.rng.hours_ms(0.25, 1.5), Place::Home),
            Place::Away => (t + self.rng.hours_ms(1.5, 5.0), Place::Home),
        };
        self.next_depart = depart.max(t + TICK);
        self.next_place = next;
    }

    /// The first departure of local day `day`: to work, an errand, or now and then a road trip.
    fn morning(&mut self, day: i64) -> (i64, Place) {
        let weekend = Self::is_weekend(day);
        let (hour, place) = if self.rng.chance(if weekend { 0.12 } else { 0.03 }) {
            (self.rng.range(7.5, 10.0), Place::Away)
        } else if self.commuter && !weekend {
            (self.rng.range(6.75, 9.25), Place::Work)
        } else {
            (self.rng.range(9.0, 12.5), Place::Errand)
        };
        (self.at_local(day, hour), place)
    }

    // --- stepping --------------------------------------------------------------------------

    fn step(&mut self) {
        let t = self.t;
        let end = t + TICK;
        self.run_events(t);
        match self.mode {
            Mode::Parked if t >= self.next_depart => {
                self.depart();
                self.drive(end);
            }
            Mode::Parked => self.park(),
            Mode::Driving => self.drive(end),
            Mode::FastCharging => self.fast_charge(),
            Mode::Refuelling => {
                if end >= self.stop_until {
                    self.fuel_l = self.def().tank_l;
                    self.mode = Mode::Driving;
                }
            }
        }
        if let Some(tire) = self.leaking_tire {
            let p = &mut self.tire_cold_kpa[usize::from(tire)];
            *p = (*p - self.leak_kpa_per_h * TICK_HOURS as f32).max(140.0);
        }
        self.t = end;
    }

    /// Starts and ends the rare events due at `t`.
    fn run_events(&mut self, t: i64) {
        for slot in &mut self.dtcs {
            if slot.is_some_and(|d| d.until <= t) {
                *slot = None;
            }
        }
        for slot in &mut self.alerts {
            if slot.is_some_and(|a| a.until <= t) {
                *slot = None;
            }
        }
        if self.connection_error_until.is_some_and(|until| until <= t) {
            self.connection_error_until = None;
        }
        if t >= self.next_dtc_at {
            self.raise_dtc(t);
            self.next_dtc_at = t + self.rng.wait_ms(DTC_MEAN_H);
        }
        if t >= self.next_alert_at {
            self.raise_alert(t);
            self.next_alert_at = t + self.rng.wait_ms(ALERT_MEAN_H);
        }
        if t >= self.next_connection_error_at {
            if self.connection_error_until.is_none() {
                self.connection_error_until = Some(t + self.rng.hours_ms(0.5, 3.0));
            }
            self.next_connection_error_at = t + self.rng.wait_ms(CONNECTION_ERROR_MEAN_H);
        }
        if t >= self.next_leak_at {
            if self.leaking_tire.is_none() {
                self.leaking_tire = Some(self.rng.below(4) as u8);
                self.leak_kpa_per_h = self.rng.range(0.8, 3.0) as f32;
            }
            self.next_leak_at = t + self.rng.wait_ms(LEAK_MEAN_H);
        }
        if let Some(tire) = self.leaking_tire {
            // Once the TPMS complains, the owner gets to it within a day or so, parked.
            if self.leak_fix_at == i64::MAX && self.tire_cold_kpa[usize::from(tire)] < TIRE_LOW_KPA
            {
                self.leak_fix_at = t + self.rng.hours_ms(3.0, 30.0);
            }
            if t >= self.leak_fix_at && self.mode == Mode::Parked {
                self.fix_leak();
            }
        }
        if self.powertrain.has_engine() {
            if self.oil_service_at == i64::MAX && self.oil_pct < OIL_LOW_PCT {
                self.oil_service_at = t + self.rng.hours_ms(24.0, 96.0);
            }
            if t >= self.oil_service_at && self.mode == Mode::Parked {
                self.oil_pct = 100.0;
                self.oil_service_at = i64::MAX;
            }
        }
    }

    fn fix_leak(&mut self) {
        if let Some(tire) = self.leaking_tire.take() {
            self.tire_cold_kpa[usize::from(tire)] = self.tire_nominal_kpa;
        }
        self.leak_fix_at = i64::MAX;
    }

    fn raise_dtc(&mut self, t: i64) {
        let Some(slot) = self.dtcs.iter().position(Option::is_none) else {
            return;
        };
        let powertrain = self.powertrain;
        let active: Vec<u8> = self.dtcs.iter().flatten().map(|d| d.code).collect();
        let pool: Vec<u8> = (0..DTCS.len() as u8)
            .filter(|&i| DTCS[usize::from(i)].1.contains(&powertrain) && !active.contains(&i))
            .collect();
        if pool.is_empty() {
            return;
        }
        let code = pool[self.rng.below(pool.len())];
        // Mostly an intermittent fault that clears within hours; sometimes one that lasts days.
        let duration = if self.rng.chance(0.85) {
            self.rng.hours_ms(0.75, 6.0)
        } else {
            self.rng.hours_ms(24.0, 48.0)
        };
        self.dtcs[slot] = Some(Dtc {
            code,
            since: t,
            until: t + duration,
        });
    }

    fn raise_alert(&mut self, t: i64) {
        let Some(slot) = self.alerts.iter().position(Option::is_none) else {
            return;
        };
        let powertrain = self.powertrain;
        let busy: Vec<u8> = self.alerts.iter().flatten().map(|a| a.system).collect();
        let pool: Vec<(usize, u8)> = RANDOM_ALERTS
            .iter()
            .copied()
            .filter(|&(s, _)| supports_system(powertrain, s) && !busy.contains(&(s as u8)))
            .collect();
        if pool.is_empty() {
            return;
        }
        let (system, description) = pool[self.rng.below(pool.len())];
        let duration = if self.rng.chance(0.8) {
            self.rng.hours_ms(0.5, 8.0)
        } else {
            self.rng.hours_ms(24.0, 48.0)
        };
        self.alerts[slot] = Some(Alert {
            system: system as u8,
            description,
            until: t + duration,
        });
    }

    /// One parked minute: home charging, cooling tires, a sleeping car's small drains.
    fn park(&mut self) {
        let def = self.def();
        let limit = f64::from(self.charge_limit);
        if self.plugged && self.soc < limit {
            self.soc = (self.soc + def.ac_kw * TICK_HOURS / def.battery_kwh * 100.0).min(limit);
            self.lv_soc = (self.lv_soc + 0.2).min(98.0);
        } else {
            if self.powertrain.has_battery() && !self.plugged {
                // Standby losses, about half a percent a day; a plugged-in car covers them
                // from the wall (else a full battery would flap between full and charging).
                self.soc = (self.soc - 0.02 * TICK_HOURS).max(0.0);
            }
            self.lv_soc = (self.lv_soc - 0.1 * TICK_HOURS as f32).max(70.0);
        }
        self.tire_heat *= 0.978; // cools with a 45-minute time constant
    }

    /// Leaves for `next_place`: unplugs, picks the destination and a dog-leg path to it.
    fn depart(&mut self) {
        self.plugged = false;
        let from = self.pos;
        let city = self.city();
        let dest = match self.next_place {
            Place::Home | Place::Roadside => wide(self.home),
            Place::Work => wide(self.work),
            Place::Errand => {
                let p = offset(
                    wide(self.home),
                    self.rng.range(0.0, 360.0),
                    self.rng.range(4.0, 14.0),
                );
                within_city(city, p, 1.5)
            }
            Place::Away => {
                let (lo, hi) = city.road_trip_bearings;
                offset(
                    wide(self.home),
                    self.rng.range(lo, hi).rem_euclid(360.0),
                    self.rng.range(120.0, 220.0),
                )
            }
        };
        let (d, b) = dist_bearing(from, dest);
        let side = if self.rng.chance(0.5) { 90.0 } else { -90.0 };
        self.via = narrow(offset(
            offset(from, b, d / 2.0),
            b + side,
            d * self.rng.range(0.05, 0.2),
        ));
        self.dest = narrow(dest);
        self.road_trip = self.next_place == Place::Away || self.place == Place::Away;
        self.cruise_kph = if self.road_trip {
            self.rng.range(95.0, 122.0)
        } else if d < 6.0 {
            self.rng.range(22.0, 35.0)
        } else if d < 15.0 {
            self.rng.range(28.0, 45.0)
        } else {
            self.rng.range(40.0, 65.0)
        } as f32;
        self.on_first_leg = true;
        self.mode = Mode::Driving;
    }

    fn route_remaining_km(&self) -> f64 {
        if self.on_first_leg {
            let via = wide(self.via);
            dist_bearing(self.pos, via).0 + dist_bearing(via, wide(self.dest)).0
        } else {
            dist_bearing(self.pos, wide(self.dest)).0
        }
    }

    /// One driving minute ending at `end`.
    fn drive(&mut self, end: i64) {
        let remaining = self.route_remaining_km();
        let mut speed = f64::from(self.cruise_kph) * self.rng.range(0.8, 1.12);
        if !self.road_trip && self.rng.chance(0.08) {
            speed = 0.0; // a red light
        }
        // Slow down for the last kilometre or two, as one does approaching a parking spot.
        speed = speed.min(12.0 + remaining * 40.0).clamp(0.0, MAX_SPEED_KPH);
        let (moved, arrived) = self.move_along(speed * TICK_HOURS);
        self.odometer_km += moved;
        self.consume(moved, speed);
        self.tire_heat += (1.0 - self.tire_heat) * 0.0645; // warms with a 15-minute constant
        self.lv_soc = (self.lv_soc + 0.2).min(98.0);
        if arrived {
            self.arrive(end);
            return;
        }
        self.speed_kph = speed as f32;
        let left = self.route_remaining_km();
        let def = self.def();
        let low_battery = if self.road_trip { 20.0 } else { 15.0 };
        if self.powertrain == Powertrain::Electric
            && def.dc_kw > 0.0
            && self.soc < low_battery
            && left > 3.0
        {
            self.mode = Mode::FastCharging;
        } else if self.powertrain.has_engine() && self.fuel_l < def.tank_l * 0.1 && left > 3.0 {
            self.mode = Mode::Refuelling;
            self.stop_until = end + self.rng.hours_ms(5.0 / 60.0, 9.0 / 60.0);
        }
        if self.mode != Mode::Driving {
            self.speed_kph = 0.0;
        }
    }

    /// Moves `km` along the path (less if the destination comes first); returns the distance
    /// moved and whether the car arrived.
    fn move_along(&mut self, km: f64) -> (f64, bool) {
        let mut left = km;
        let mut moved = 0.0;
        loop {
            let target = if self.on_first_leg {
                wide(self.via)
            } else {
                wide(self.dest)
            };
            let (d, b) = dist_bearing(self.pos, target);
            if d > 1e-9 {
                self.heading = b as f32;
            }
            if d <= left {
                self.pos = target;
                moved += d;
                left -= d;
                if self.on_first_leg {
                    self.on_first_leg = false;
                    continue;
                }
                return (moved, true);
            }
            if left <= 0.0 {
                return (moved, false);
            }
            self.pos = offset(self.pos, b, left);
            moved += left;
            return (moved, false);
        }
    }

    /// Energy for `km` driven at `speed` km/h: battery first (hybrids down to their hold
    /// level), then fuel; the engine's kilometres wear its oil.
    fn consume(&mut self, km: f64, speed: f64) {
        let def = self.def();
        let highway = 1.0 + 0.006 * (speed - 70.0).max(0.0);
        let electric = match self.powertrain {
            Powertrain::Electric => true,
            Powertrain::PluginHybrid => self.soc > PHEV_HOLD_PCT,
            Powertrain::Combustion => false,
        };
        if electric {
            let cold = 1.0 + 0.012 * (15.0 - self.outside_temp_c(self.t)).max(0.0);
            let kwh = km * def.kwh_per_100km / 100.0 * highway * cold;
            self.soc = (self.soc - kwh / def.battery_kwh * 100.0).max(0.0);
        } else {
            let litres = km * def.l_per_100km / 100.0 * highway;
            self.fuel_l = (self.fuel_l - litres).max(0.0);
            // A synthetic oil lasts about 12,000 km.
            self.oil_pct = (self.oil_pct - (km / 120.0) as f32).max(0.0);
        }
    }

    fn arrive(&mut self, end: i64) {
        self.mode = Mode::Parked;
        self.speed_kph = 0.0;
        self.place = self.next_place;
        self.parked_since = end;
        self.road_trip = false;
        if self.place == Place::Home && self.powertrain.has_battery() {
            let hour = self.local_hour(end);
            let evening = !(5.0..15.0).contains(&hour);
            let wants = self.soc < f64::from(self.charge_limit) - 2.0;
            if wants && (evening || self.soc < 50.0) && self.rng.chance(0.9) {
                self.plugged = true;
            }
        }
        self.plan(end);
    }

    /// One minute at a DC fast charger; the curve flattens past half full.
    fn fast_charge(&mut self) {
        let def = self.def();
        let kw = if self.soc < 50.0 {
            def.dc_kw
        } else {
            def.dc_kw * 0.6
        };
        self.soc += kw * TICK_HOURS / def.battery_kwh * 100.0;
        if self.soc >= FAST_CHARGE_TARGET_PCT {
            self.soc = FAST_CHARGE_TARGET_PCT;
            self.mode = Mode::Driving;
        }
        self.lv_soc = (self.lv_soc + 0.2).min(98.0);
    }

    /// Jumps to `to` without simulating minutes: the car parks where it is (a trip in
    /// progress ends there, any stop completes), charges if plugged in, and events that would
    /// have ended by `to` end; none start. Keeps long jumps cheap and still physical.
    fn fast_forward(&mut self, to: i64) {
        let hours = (to - self.t) as f64 / HOUR_MS;
        let def = self.def();
        match self.mode {
            Mode::Parked => {}
            Mode::Driving | Mode::FastCharging | Mode::Refuelling => {
                if self.mode == Mode::FastCharging {
                    self.soc = self.soc.max(FAST_CHARGE_TARGET_PCT);
                }
                if self.mode == Mode::Refuelling {
                    self.fuel_l = def.tank_l;
                }
                self.mode = Mode::Parked;
                self.speed_kph = 0.0;
                self.place = Place::Roadside;
                self.road_trip = false;
                self.parked_since = self.t;
            }
        }
        let limit = f64::from(self.charge_limit);
        if self.plugged && self.soc < limit {
            self.soc = (self.soc + def.ac_kw * hours / def.battery_kwh * 100.0).min(limit);
        }
        self.tire_heat = 0.0;
        if let Some(tire) = self.leaking_tire {
            let p = &mut self.tire_cold_kpa[usize::from(tire)];
            *p = (*p - self.leak_kpa_per_h * hours as f32).max(140.0);
        }
        for slot in &mut self.dtcs {
            if slot.is_some_and(|d| d.until <= to) {
                *slot = None;
            }
        }
        for slot in &mut self.alerts {
            if slot.is_some_and(|a| a.until <= to) {
                *slot = None;
            }
        }
        if self.connection_error_until.is_some_and(|until| until <= to) {
            self.connection_error_until = None;
        }
        if self.next_dtc_at < to {
            self.next_dtc_at = to + self.rng.wait_ms(DTC_MEAN_H);
        }
        if self.next_alert_at < to {
            self.next_alert_at = to + self.rng.wait_ms(ALERT_MEAN_H);
        }
        if self.next_connection_error_at < to {
            self.next_connection_error_at = to + self.rng.wait_ms(CONNECTION_ERROR_MEAN_H);
        }
        if self.next_leak_at < to {
            self.next_leak_at = to + self.rng.wait_ms(LEAK_MEAN_H);
        }
        if self.leak_fix_at <= to {
            self.fix_leak();
        }
        if self.oil_service_at <= to {
            self.oil_pct = 100.0;
            self.oil_service_at = i64::MAX;
        }
        self.t = to;
        if self.next_depart < to {
            self.plan(to);
        }
    }

    // --- reporting -----------------------------------------------------------------------

    /// Outside temperature: the city's season and hour of day, plus weather that drifts from
    /// day to day (shared by the city's vehicles) and this car's sensor offset.
    fn outside_temp_c(&self, t: i64) -> f64 {
        let city = self.city();
        let hours = self.local_hours_total(t);
        let day = (hours / 24.0).floor();
        let hour = hours - day * 24.0;
        let day_of_year = (t as f64 / (24.0 * HOUR_MS)).rem_euclid(365.25);
        let tau = std::f64::consts::TAU;
        let seasonal = city.seasonal_swing_c * (tau * (day_of_year - 200.0) / 365.25).cos();
        let diurnal = city.daily_swing_c * (tau * (hour - 9.0) / 24.0).sin();
        let weather_of = |d: f64| {
            let u =
                (mix64(self.weather_key ^ (d as i64 as u64)) >> 11) as f64 / (1u64 << 53) as f64;
            (u - 0.5) * 8.0
        };
        let frac = hour / 24.0;
        let weather = weather_of(day) * (1.0 - frac) + weather_of(day + 1.0) * frac;
        city.mean_temp_c + seasonal + diurnal + weather + f64::from(self.temp_offset_c)
    }

    fn charging(&self) -> bool {
        self.mode == Mode::FastCharging || (self.plugged && self.soc < f64::from(self.charge_limit))
    }

    fn readings(&self) -> Readings {
        let def = self.def();
        let charging = self.charging();
        let parked = self.mode == Mode::Parked;
        let minutes_to_full = if charging {
            let (target, kw) = if self.mode == Mode::FastCharging {
                (FAST_CHARGE_TARGET_PCT, def.dc_kw * 0.75)
            } else {
                (f64::from(self.charge_limit), def.ac_kw)
            };
            let minutes = (target - self.soc) / 100.0 * def.battery_kwh / kw * 60.0;
            // Vehicles revise the estimate in coarse steps; five minutes avoids churn.
            ((minutes / 5.0).ceil() * 5.0).max(0.0) as u16
        } else {
            0
        };
        // Slots fill in any order: sort by activation (empty slots last) so that equal sets
        // compare equal. An in-place sort of two: readings are taken every advance and must
        // not allocate.
        let mut dtcs = self.dtcs.map(|slot| slot.map(|d| (d.code, d.since)));
        dtcs.sort_unstable_by_key(|slot| slot.map_or((1, 0, 0), |(code, since)| (0, since, code)));
        let heading = (f64::from(self.heading).round() as u16) % 360;
        let tire = |i: usize| {
            (f64::from(self.tire_cold_kpa[i]) * (1.0 + 0.035 * f64::from(self.tire_heat))).round()
                as u16
        };
        Readings {
            lat_micro: (self.pos[0] * 1e6).round() as i32,
            lon_micro: (self.pos[1] * 1e6).round() as i32,
            heading,
            speed: if self.mode == Mode::Driving {
                f64::from(self.speed_kph).round() as u16
            } else {
                0
            },
            odometer_tenths: (self.odometer_km * 10.0).floor() as u32,
            driving: self.mode == Mode::Driving,
            locked: !(parked
                && (self.t - self.parked_since < 3 * TICK || self.next_depart - self.t <= TICK)),
            asleep: parked
                && !charging
                && self.t - self.parked_since >= 20 * TICK
                && self.next_depart - self.t > TICK,
            at_home: dist_bearing(self.pos, wide(self.home)).0 < 0.15,
            cable: self.plugged || self.mode == Mode::FastCharging,
            charging,
            fast_charger: self.mode == Mode::FastCharging,
            soc: self.soc.round().clamp(0.0, 100.0) as u8,
            charge_limit: self.charge_limit,
            ev_range: if def.kwh_per_100km > 0.0 {
                (self.soc / 100.0 * def.battery_kwh / def.kwh_per_100km * 100.0).round() as u16
            } else {
                0
            },
            minutes_to_full,
            fuel_pct: if def.tank_l > 0.0 {
                (self.fuel_l / def.tank_l * 100.0).round().clamp(0.0, 100.0) as u8
            } else {
                0
            },
            oil_pct: self.oil_pct.round().clamp(0.0, 100.0) as u8,
            fuel_dl: (self.fuel_l * 10.0).round() as u16,
            ice_range: if def.l_per_100km > 0.0 {
                (self.fuel_l / def.l_per_100km * 100.0).round() as u16
            } else {
                0
            },
            tires: [tire(0), tire(1), tire(2), tire(3)],
            temp_half_c: (self.outside_temp_c(self.t) * 2.0).round() as i16,
            lv_soc: self.lv_soc.round().clamp(0.0, 100.0) as u8,
            systems: self.system_statuses(),
            dtcs,
        }
    }

    fn system_statuses(&self) -> [u8; 10] {
        let mut statuses = [0u8; 10];
        for alert in self.alerts.iter().flatten() {
            statuses[usize::from(alert.system)] = alert.description + 1;
        }
        let lowest =
            (0..4).min_by(|&a, &b| self.tire_cold_kpa[a].total_cmp(&self.tire_cold_kpa[b]));
        if let Some(tire) = lowest.filter(|&i| self.tire_cold_kpa[i] < TIRE_LOW_KPA) {
            statuses[SYS_TIRE_PRESSURE] = tire as u8 + 1;
        }
        if self.powertrain.has_engine() {
            if self.oil_pct < OIL_LOW_PCT {
                statuses[SYS_OIL_LIFE] = DESC_OIL_LIFE + 1;
            }
            if self
                .dtcs
                .iter()
                .flatten()
                .any(|d| DTCS[usize::from(d.code)].0.starts_with('P'))
            {
                statuses[SYS_MIL] = DESC_MIL + 1;
            }
        }
        statuses
    }

    fn active_errors(&self) -> Vec<VehicleErrorState> {
        match self.connection_error_until {
            Some(_) => vec![VehicleErrorState {
                error_type: "CONNECTED_SERVICES_ACCOUNT".into(),
                code: "AUTHENTICATION_FAILED".into(),
                description: Some(CONNECTION_ERROR_DESCRIPTION.into()),
                signals: Vec::new(),
            }],
            None => Vec::new(),
        }
    }

    /// Calls `out` with the body of every signal whose reading differs from `prev` (every
    /// signal when `prev` is `None`), in a fixed order.
    fn for_each_signal(
        &self,
        r: &Readings,
        prev: Option<&Readings>,
        mut out: impl FnMut(&'static str, Value),
    ) {
        let first = prev.is_none();
        let p = prev.unwrap_or(r);
        let unit_value = |unit: &str, value: f64| json!({"unit": unit, "value": number(value)});
        let flag = |value: bool| json!({ "value": value });
        if first {
            if let Some(vin) = &self.vin {
                let vin = String::from_utf8_lossy(vin).into_owned();
                out("vehicleidentification-vin", json!({ "value": vin }));
            }
            out("connectivitystatus-isonline", flag(true));
        }
        if self.powertrain.has_battery() {
            if first || p.soc != r.soc {
                out(
                    "tractionbattery-stateofcharge",
                    unit_value("percent", f64::from(r.soc)),
                );
            }
            if first || p.ev_range != r.ev_range {
                out(
                    "tractionbattery-range",
                    unit_value("kilometers", f64::from(r.ev_range)),
                );
            }
            if first || p.cable != r.cable {
                out("charge-ischargingcableconnected", flag(r.cable));
            }
            if first || p.charging != r.charging {
                out("charge-ischarging", flag(r.charging));
            }
            let status = |r: &Readings| match (r.cable, r.charging) {
                (_, true) => "CHARGING",
                (true, false) => "FULLY_CHARGED",
                (false, false) => "NOT_CHARGING",
            };
            if first || status(p) != status(r) {
                out(
                    "charge-detailedchargingstatus",
                    json!({ "value": status(r) }),
                );
            }
            if first || p.fast_charger != r.fast_charger {
                out("charge-isfastchargerpresent", flag(r.fast_charger));
            }
            if first || p.minutes_to_full != r.minutes_to_full {
                out(
                    "charge-timetocomplete",
                    json!({ "value": r.minutes_to_full }),
                );
            }
            if first || p.charge_limit != r.charge_limit {
                out(
                    "charge-chargelimits",
                    json!({
                        "values": [{"type": "GLOBAL", "limit": r.charge_limit, "condition": null}],
                        "activeLimit": r.charge_limit,
                        "unit": "percent"
                    }),
                );
            }
        }
        if self.powertrain.has_engine() {
            if first || p.fuel_pct != r.fuel_pct {
                out(
                    "internalcombustionengine-fuellevel",
                    unit_value("percent", f64::from(r.fuel_pct)),
                );
            }
            if first || p.fuel_dl != r.fuel_dl {
                out(
                    "internalcombustionengine-amountremaining",
                    unit_value("liters", f64::from(r.fuel_dl) / 10.0),
                );
            }
            if first || p.ice_range != r.ice_range {
                out(
                    "internalcombustionengine-range",
                    unit_value("kilometers", f64::from(r.ice_range)),
                );
            }
            if first || p.oil_pct != r.oil_pct {
                out(
                    "internalcombustionengine-oillife",
                    unit_value("percent", f64::from(r.oil_pct)),
                );
            }
        }
        if first || (p.lat_micro, p.lon_micro, p.heading) != (r.lat_micro, r.lon_micro, r.heading) {
            out(
                "location-preciselocation",
                json!({
                    "latitude": number(f64::from(r.lat_micro) / 1e6),
                    "longitude": number(f64::from(r.lon_micro) / 1e6),
                    "heading": r.heading,
                    "direction": direction(r.heading),
                    "locationType": "CURRENT"
                }),
            );
        }
        if first || p.at_home != r.at_home {
            out("location-isathome", flag(r.at_home));
        }
        if first || p.odometer_tenths != r.odometer_tenths {
            out(
                "odometer-traveleddistance",
                unit_value("kilometers", f64::from(r.odometer_tenths) / 10.0),
            );
        }
        if first || p.speed != r.speed {
            out("motion-currentspeed", unit_value("kph", f64::from(r.speed)));
        }
        if first || p.driving != r.driving {
            let gear = if r.driving { "DRIVE" } else { "PARK" };
            out("transmission-gearstate", json!({ "value": gear }));
        }
        if first || p.locked != r.locked {
            out("closure-islocked", flag(r.locked));
        }
        if first || p.asleep != r.asleep {
            out("connectivitystatus-isasleep", flag(r.asleep));
        }
        if first || p.lv_soc != r.lv_soc {
            out(
                "lowvoltagebattery-stateofcharge",
                unit_value("percent", f64::from(r.lv_soc)),
            );
        }
        if first || p.temp_half_c != r.temp_half_c {
            out(
                "climate-externaltemperature",
                unit_value("celsius", f64::from(r.temp_half_c) / 2.0),
            );
        }
        if first || p.tires != r.tires {
            let values: Vec<Value> = (0..4)
                .map(|i| json!({"row": i / 2, "column": i % 2, "tirePressure": r.tires[i]}))
                .collect();
            out(
                "wheel-tires",
                json!({"values": values, "rowCount": 2, "columnCount": 2, "unit": "kilopascals"}),
            );
        }
        if first || p.dtcs != r.dtcs {
            let values: Vec<Value> = r
                .dtcs
                .iter()
                .flatten()
                .map(|&(code, since)| {
                    json!({"code": DTCS[usize::from(code)].0, "timestamp": iso_millis(since)})
                })
                .collect();
            let count = values.len();
            out("diagnostics-dtclist", json!({ "values": values }));
            if first || p.dtcs.iter().flatten().count() != count {
                out("diagnostics-dtccount", unit_value("count", count as f64));
            }
        }
        for (i, code) in SYSTEMS.iter().enumerate() {
            if !supports_system(self.powertrain, i) || !(first || p.systems[i] != r.systems[i]) {
                continue;
            }
            let body = match r.systems[i] {
                0 => json!({"status": "OK", "description": OK_DESCRIPTION}),
                d => json!({"status": "ALERT", "description": DESCRIPTIONS[usize::from(d - 1)]}),
            };
            out(code, body);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fleethook_wire::catalog;
    use std::collections::{BTreeMap, HashSet};

    const SEED: u64 = 42;
    /// 2024-03-04T00:00:00Z, a Monday.
    const START: i64 = 1_709_510_400_000;
    const MIN: i64 = 60_000;
    const HOUR: i64 = 60 * MIN;
    const DAY: i64 = 24 * HOUR;

    /// The updates of one vehicle advanced every `every` ms for `duration` ms.
    fn history(spec: &SimVehicleSpec, seed: u64, every: i64, duration: i64) -> Vec<SimUpdate> {
        let mut v = SimVehicle::new(spec, seed, START);
        (0..=duration / every)
            .map(|i| v.advance(START + i * every))
            .collect()
    }

    fn haversine_km(a: (f64, f64), b: (f64, f64)) -> f64 {
        let (la1, lo1, la2, lo2) = (
            a.0.to_radians(),
            a.1.to_radians(),
            b.0.to_radians(),
            b.1.to_radians(),
        );
        let h = ((la2 - la1) / 2.0).sin().powi(2)
            + la1.cos() * la2.cos() * ((lo2 - lo1) / 2.0).sin().powi(2);
        2.0 * 6371.0 * h.sqrt().asin()
    }

    /// The latest body of every signal, as the platform would hold it.
    #[derive(Default)]
    struct View {
        signals: BTreeMap<String, Value>,
    }

    impl View {
        fn value(&self, code: &str) -> f64 {
            self.signals[code]["value"].as_f64().expect(code)
        }

        fn location(&self) -> (f64, f64) {
            let loc = &self.signals["location-preciselocation"];
            (
                loc["latitude"].as_f64().unwrap(),
                loc["longitude"].as_f64().unwrap(),
            )
        }
    }

    /// Checks every emitted body against the catalog and applies it to `view`.
    fn apply(view: &mut View, update: &SimUpdate, now: i64) {
        let mut seen = HashSet::new();
        for s in &update.signals {
            assert!(seen.insert(&s.code), "{} emitted twice", s.code);
            let def = catalog::lookup(&s.code).unwrap_or_else(|| panic!("{} unknown", s.code));
            assert_eq!(def.validate_body(&s.body), Ok(()), "{}: {}", s.code, s.body);
            assert_eq!(
                def.normalize_body(&s.body),
                s.body,
                "{} not stored form",
                s.code
            );
            assert_eq!(s.retrieved_at, now);
            assert!(s.oem_updated_at.is_some_and(|t| t <= now && t > now - MIN));
            view.signals.insert(s.code.clone(), s.body.clone());
        }
    }

    /// Runs one vehicle for `duration` sampled every `every` and checks physics between
    /// consecutive fresh samples (a connection error freezes the data, so it is skipped).
    fn check_physics(spec: &SimVehicleSpec, every: i64, duration: i64) {
        let mut v = SimVehicle::new(spec, SEED, START);
        let mut view = View::default();
        let mut erroring = false;
        let mut last_fresh: Option<(i64, f64, (f64, f64))> = None;
        let mut now = START;
        while now <= START + duration {
            let update = v.advance(now);
            apply(&mut view, &update, now);
            if let Some(errors) = &update.errors {
                erroring = !errors.is_empty();
            }
            let id = format!("vehicle {} at {}", spec.index, iso_millis(now));
            if spec.powertrain.has_battery() {
                let soc = view.value("tractionbattery-stateofcharge");
                assert!((0.0..=100.0).contains(&soc), "{id}: soc {soc}");
            }
            if spec.powertrain.has_engine() {
                let fuel = view.value("internalcombustionengine-fuellevel");
                assert!((0.0..=100.0).contains(&fuel), "{id}: fuel {fuel}");
            }
            let speed = view.value("motion-currentspeed");
            assert!((0.0..=130.0).contains(&speed), "{id}: speed {speed}");
            let gear = view.signals["transmission-gearstate"]["value"].clone();
            if speed > 0.0 {
                assert_eq!(gear, "DRIVE", "{id}: moving in {gear}");
            }
            let (lat, lon) = view.location();
            assert!((-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lon));
            let odometer = view.value("odometer-traveleddistance");
            if !erroring {
                if let Some((then, odo_then, loc_then)) = last_fresh {
                    let hours = (now - then) as f64 / HOUR as f64;
                    let driven = odometer - odo_then;
                    let moved = haversine_km(loc_then, (lat, lon));
                    assert!(driven >= 0.0, "{id}: odometer went back by {driven}");
                    // Rounding: the odometer shows tenths (floored), positions micro-degrees.
                    assert!(
                        moved <= driven * 1.01 + 0.15,
                        "{id}: moved {moved} km but the odometer grew {driven} km"
                    );
                    assert!(
                        driven <= 130.0 * hours + 0.15,
                        "{id}: drove {driven} km in {hours} h"
                    );
                    assert!(moved <= 130.0 * hours + 0.15, "{id}: teleported {moved} km");
                }
                last_fresh = Some((now, odometer, (lat, lon)));
            }
            now += every;
        }
    }

    #[test]
    fn same_seed_gives_identical_specs_and_histories() {
        assert_eq!(fleet_spec(SEED, 30), fleet_spec(SEED, 30));
        for spec in fleet_spec(SEED, 8) {
            assert_eq!(
                history(&spec, SEED, MIN, 2 * DAY),
                history(&spec, SEED, MIN, 2 * DAY),
                "vehicle {}",
                spec.index
            );
        }
    }

    #[test]
    fn different_seeds_give_different_fleets_and_histories() {
        let a = fleet_spec(1, 20);
        let b = fleet_spec(2, 20);
        assert_ne!(a, b);
        assert!(a.iter().zip(&b).all(|(a, b)| a.vin != b.vin));
        // The same spec under two seeds lives a different life.
        assert_ne!(
            history(&a[0], 1, 5 * MIN, DAY),
            history(&a[0], 2, 5 * MIN, DAY)
        );
    }

    #[test]
    fn a_vehicles_history_does_not_depend_on_fleet_size() {
        let small = fleet_spec(SEED, 3);
        let large = fleet_spec(SEED, 200);
        assert_eq!(small[..], large[..3]);
        assert_eq!(vehicle_spec(SEED, 150), large[150]);
        assert_eq!(
            history(&small[2], SEED, 5 * MIN, DAY),
            history(&large[2], SEED, 5 * MIN, DAY)
        );
    }

    #[test]
    fn physical_invariants_hold_sampled_every_five_minutes() {
        for spec in fleet_spec(SEED, 50) {
            check_physics(&spec, 5 * MIN, 3 * DAY);
        }
    }

    #[test]
    fn physical_invariants_hold_across_six_hour_jumps() {
        for spec in fleet_spec(SEED, 50) {
            check_physics(&spec, 6 * HOUR, 3 * DAY);
        }
    }

    #[test]
    fn every_emitted_body_passes_catalog_validation() {
        // Every powertrain, a week, with a fast-forward in the middle.
        let specs = fleet_spec(7, 12);
        for p in [
            Powertrain::Electric,
            Powertrain::PluginHybrid,
            Powertrain::Combustion,
        ] {
            assert!(specs.iter().any(|s| s.powertrain == p), "{p:?} missing");
        }
        for spec in &specs {
            let mut v = SimVehicle::new(spec, 7, START);
            let mut view = View::default();
            for now in (0..=7 * 24)
                .map(|h| START + h * HOUR)
                .chain([START + 40 * DAY])
            {
                apply(&mut view, &v.advance(now), now);
            }
            assert_eq!(view.signals.len(), v.signal_codes().len());
        }
    }

    #[test]
    fn first_advance_is_a_full_snapshot_and_later_ones_only_changes() {
        for spec in fleet_spec(SEED, 10) {
            let mut v = SimVehicle::new(&spec, SEED, START);
            let first = v.advance(START);
            let codes: Vec<&str> = first.signals.iter().map(|s| s.code.as_str()).collect();
            assert_eq!(codes, v.signal_codes());
            for required in [
                "location-preciselocation",
                "odometer-traveleddistance",
                "motion-currentspeed",
                "transmission-gearstate",
                "wheel-tires",
                "diagnostics-dtclist",
                "diagnostics-dtccount",
                "diagnostics-tirepressuremonitoring",
                "vehicleidentification-vin",
            ] {
                assert!(codes.contains(&required), "{required} missing");
            }
            let battery = codes.contains(&"tractionbattery-stateofcharge");
            let engine = codes.contains(&"internalcombustionengine-fuellevel");
            assert_eq!(battery, spec.powertrain.has_battery());
            assert_eq!(engine, spec.powertrain.has_engine());
            assert_eq!(first.errors, Some(Vec::new()));

            // Asking again at the same time: nothing changed.
            assert_eq!(v.advance(START), SimUpdate::default());
            assert_eq!(v.advance(START + 30_000), SimUpdate::default());

            let mut view = View::default();
            apply(&mut view, &first, START);
            for i in 1..=(24 * 60) {
                let now = START + i * MIN;
                let update = v.advance(now);
                for s in &update.signals {
                    assert_ne!(
                        view.signals.get(&s.code),
                        Some(&s.body),
                        "{} re-sent unchanged",
                        s.code
                    );
                }
                apply(&mut view, &update, now);
            }
        }
    }

    /// What a fleet did over a period, counted from its updates.
    #[derive(Debug, Default)]
    struct Events {
        dtc_activated: usize,
        dtc_cleared: usize,
        alerts_raised: usize,
        alerts_cleared: usize,
        plug_ins: usize,
        unplugs: usize,
        fully_charged_at_limit: usize,
        fast_charges: usize,
        errors_raised: usize,
        errors_resolved: usize,
        moving_samples: usize,
        moving_at_night: usize,
    }

    fn run_fleet(seed: u64, count: u32, every: i64, duration: i64) -> Events {
        let mut events = Events::default();
        for spec in fleet_spec(seed, count) {
            let mut v = SimVehicle::new(&spec, seed, START);
            let mut view = View::default();
            let mut now = START;
            while now <= START + duration {
                let update = v.advance(now);
                let before = std::mem::take(&mut view.signals);
                view.signals.clone_from(&before);
                apply(&mut view, &update, now);
                if let Some(errors) = &update.errors {
                    if errors.is_empty() && now > START {
                        events.errors_resolved += 1;
                    } else if !errors.is_empty() {
                        assert_eq!(errors[0].error_type, "CONNECTED_SERVICES_ACCOUNT");
                        assert_eq!(errors[0].code, "AUTHENTICATION_FAILED");
                        assert!(errors[0].signals.is_empty());
                        events.errors_raised += 1;
                    }
                }
                if now > START {
                    count_changes(&mut events, &before, &view.signals);
                }
                if view.value("motion-currentspeed") > 0.0 {
                    events.moving_samples += 1;
                    let lon = view.location().1;
                    let local = (now as f64 / HOUR as f64 + lon / 15.0).rem_euclid(24.0);
                    if (1.0..5.0).contains(&local) {
                        events.moving_at_night += 1;
                    }
                }
                now += every;
            }
        }
        events
    }

    fn count_changes(
        events: &mut Events,
        before: &BTreeMap<String, Value>,
        after: &BTreeMap<String, Value>,
    ) {
        let dtcs = |m: &BTreeMap<String, Value>| -> HashSet<String> {
            m["diagnostics-dtclist"]["values"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d["code"].as_str().unwrap().to_string())
                .collect()
        };
        let (old, new) = (dtcs(before), dtcs(after));
        events.dtc_activated += new.difference(&old).count();
        events.dtc_cleared += old.difference(&new).count();
        for (code, body) in after {
            let Some(status) = body.get("status").and_then(Value::as_str) else {
                continue;
            };
            let was = before[code]["status"].as_str().unwrap();
            match (was, status) {
                ("OK", "ALERT") => events.alerts_raised += 1,
                ("ALERT", "OK") => events.alerts_cleared += 1,
                _ => {}
            }
        }
        let flag = |m: &BTreeMap<String, Value>, code: &str| {
            m.get(code).and_then(|b| b["value"].as_bool())
        };
        match (
            flag(before, "charge-ischargingcableconnected"),
            flag(after, "charge-ischargingcableconnected"),
        ) {
            (Some(false), Some(true)) => events.plug_ins += 1,
            (Some(true), Some(false)) => events.unplugs += 1,
            _ => {}
        }
        if flag(after, "charge-isfastchargerpresent") == Some(true)
            && flag(before, "charge-isfastchargerpresent") == Some(false)
        {
            events.fast_charges += 1;
        }
        let status = |m: &BTreeMap<String, Value>| {
            m.get("charge-detailedchargingstatus")
                .map(|b| b["value"].clone())
        };
        if status(after) != status(before)
            && status(after) == Some(json!("FULLY_CHARGED"))
            && after["tractionbattery-stateofcharge"]["value"]
                == after["charge-chargelimits"]["activeLimit"]
        {
            events.fully_charged_at_limit += 1;
        }
    }

    #[test]
    fn a_week_of_a_fleet_shows_every_kind_of_event() {
        let events = run_fleet(SEED, 50, 10 * MIN, 7 * DAY);
        eprintln!("{events:?}");
        assert!(events.dtc_activated >= 1 && events.dtc_cleared >= 1);
        assert!(events.alerts_raised >= 1 && events.alerts_cleared >= 1);
        assert!(events.plug_ins >= 1 && events.unplugs >= 1);
        assert!(events.fully_charged_at_limit >= 1);
        assert!(events.fast_charges >= 1);
        assert!(events.errors_raised >= 1 && events.errors_resolved >= 1);
        // Trips are daytime things where the car is.
        assert!(events.moving_samples > 0);
        assert!(
            events.moving_at_night * 50 <= events.moving_samples,
            "{} of {} moving samples between 01:00 and 05:00 local",
            events.moving_at_night,
            events.moving_samples
        );
    }

    #[test]
    fn a_demo_fleet_shows_diagnostics_and_errors_within_hours() {
        // A demo at 300× shows five simulated hours a minute; twenty vehicles should show
        // trouble codes, alerts and a connection error within eight.
        for seed in 1..=5 {
            let events = run_fleet(seed, 20, 5 * MIN, 8 * HOUR);
            assert!(events.dtc_activated >= 1, "seed {seed}: {events:?}");
            assert!(events.alerts_raised >= 1, "seed {seed}: {events:?}");
            assert!(events.errors_raised >= 1, "seed {seed}: {events:?}");
        }
    }

    #[test]
    fn the_advance_cadence_does_not_change_the_history() {
        for spec in fleet_spec(SEED, 10) {
            let mut fine = SimVehicle::new(&spec, SEED, START);
            let mut coarse = fine.clone();
            let mut fine_view = View::default();
            let mut coarse_view = View::default();
            for i in 0..=(20 * 60) {
                let now = START + i * MIN + 17_000;
                apply(&mut fine_view, &fine.advance(now), now);
            }
            for now in [START, START + 6 * HOUR + 5, START + 20 * HOUR + 17_000] {
                apply(&mut coarse_view, &coarse.advance(now), now);
            }
            assert_eq!(fine.time(), coarse.time());
            // The state is identical, RNG included; what was reported may differ only while a
            // connection error withholds data (the views froze at different moments).
            let state = |v: &SimVehicle| SimVehicle {
                reported: None,
                reported_connection_error: None,
                ..v.clone()
            };
            assert_eq!(state(&fine), state(&coarse), "vehicle {}", spec.index);
            if fine.connection_error_until.is_none() {
                assert_eq!(
                    fine_view.signals, coarse_view.signals,
                    "vehicle {}",
                    spec.index
                );
            }
        }
    }

    #[test]
    fn a_jump_of_years_fast_forwards_and_stays_physical() {
        for spec in fleet_spec(SEED, 20) {
            let mut v = SimVehicle::new(&spec, SEED, START);
            let mut view = View::default();
            apply(&mut view, &v.advance(START + 3 * HOUR), START + 3 * HOUR);
            let odometer = view.value("odometer-traveleddistance");
            let later = START + 3 * 365 * DAY + 12_345;
            apply(&mut view, &v.advance(later), later);
            assert_eq!(v.time(), later - 12_345);
            // Only the last day is driven.
            let driven = view.value("odometer-traveleddistance") - odometer;
            assert!((0.0..=130.0 * 24.0).contains(&driven), "drove {driven}");
            check_physics(&spec, 400 * DAY, 800 * DAY);
        }
    }

    #[test]
    fn vins_are_well_formed_unique_and_checked() {
        let fleet = fleet_spec(SEED, 5_000);
        let mut seen = HashSet::new();
        for spec in &fleet {
            let vin = spec.vin.as_bytes();
            assert_eq!(vin.len(), 17, "{}", spec.vin);
            assert!(
                vin.iter()
                    .all(|c| c.is_ascii_digit() || (c.is_ascii_uppercase() && !b"IOQ".contains(c))),
                "{}",
                spec.vin
            );
            let mut fixed = [0u8; 17];
            fixed.copy_from_slice(vin);
            assert_eq!(vin[8], vin_check_digit(&fixed), "{}", spec.vin);
            assert_eq!(vin[9], model_year_code(spec.year), "{}", spec.vin);
            assert!(seen.insert(spec.vin.clone()), "duplicate {}", spec.vin);
        }
        // The wire crate's sample VIN, checked by its own test, agrees with this one.
        let sample = fleethook_wire::samples::sample_vehicle().vin;
        let mut bytes = [0u8; 17];
        bytes.copy_from_slice(sample.as_bytes());
        assert_eq!(vin_check_digit(&bytes), bytes[8]);
        // And the serial is a bijection: indices far apart never collide.
        let serials: HashSet<u64> = (0..100_000).map(|i| serial(SEED, i * 33)).collect();
        assert_eq!(serials.len(), 100_000);
    }

    #[test]
    fn the_fleet_is_mostly_electric_with_believable_models() {
        let fleet = fleet_spec(SEED, 10_000);
        let share = |p: Powertrain| {
            fleet.iter().filter(|s| s.powertrain == p).count() as f64 / fleet.len() as f64
        };
        assert!((0.57..0.63).contains(&share(Powertrain::Electric)));
        assert!((0.13..0.17).contains(&share(Powertrain::PluginHybrid)));
        assert!((0.22..0.28).contains(&share(Powertrain::Combustion)));
        for spec in &fleet {
            let def = MODELS
                .iter()
                .find(|m| m.make == spec.make && m.model == spec.model)
                .expect("a known model");
            assert_eq!(def.powertrain, spec.powertrain);
            assert!((def.years.0..=def.years.1).contains(&spec.year));
        }
        let models: HashSet<&str> = fleet.iter().map(|s| s.model.as_str()).collect();
        assert_eq!(models.len(), MODELS.len());
    }

    #[test]
    fn vehicles_live_in_several_cities() {
        let mut cities = HashSet::new();
        for spec in fleet_spec(SEED, 40) {
            let v = SimVehicle::new(&spec, SEED, START);
            let city = v.city();
            let (d, _) = dist_bearing([city.lat, city.lon], wide(v.home));
            assert!(d <= city.radius_km + 0.01);
            cities.insert(v.city);
        }
        assert!(cities.len() >= 4, "{cities:?}");
    }

    #[test]
    fn a_vehicle_registered_outside_the_fleet_is_simulated_too() {
        let spec = SimVehicleSpec {
            index: 123_456,
            make: "NISSAN".into(),
            model: "Leaf".into(),
            year: 2022,
            vin: String::new(),
            powertrain: Powertrain::Electric,
        };
        let mut v = SimVehicle::new(&spec, SEED, START);
        let first = v.advance(START);
        assert!(first
            .signals
            .iter()
            .all(|s| s.code != "vehicleidentification-vin"));
        assert!(first
            .signals
            .iter()
            .any(|s| s.code == "tractionbattery-stateofcharge"));
        check_physics(&spec, 15 * MIN, DAY);
        // A known name with another powertrain takes that powertrain's physics.
        for powertrain in [
            Powertrain::Electric,
            Powertrain::PluginHybrid,
            Powertrain::Combustion,
        ] {
            let spec = SimVehicleSpec {
                make: "FORD".into(),
                model: "F-150".into(),
                powertrain,
                ..spec.clone()
            };
            check_physics(&spec, 15 * MIN, 2 * DAY);
        }
    }

    #[test]
    fn a_vehicle_is_small() {
        // A million vehicles must fit in well under a gigabyte, and there is no heap.
        let size = std::mem::size_of::<SimVehicle>();
        assert!(size <= 512, "SimVehicle is {size} bytes");
    }

    #[test]
    fn a_resumed_vehicle_never_runs_its_odometer_back() {
        let spec = vehicle_spec(7, 0);
        let mut vehicle = SimVehicle::new(&spec, 7, 0);
        let first = vehicle.advance(60_000);
        let odometer = |update: &SimUpdate| {
            update
                .signals
                .iter()
                .find(|s| s.code == "odometer-traveleddistance")
                .and_then(|s| s.body["value"].as_f64())
        };
        let start = odometer(&first).expect("a first snapshot has the odometer");
        let recorded = start + 1_234.5;
        let stored: HashMap<String, SignalValue> = [(
            "odometer-traveleddistance".to_string(),
            SignalValue {
                code: "odometer-traveleddistance".into(),
                body: json!({"unit": "kilometers", "value": recorded}),
                oem_updated_at: None,
                retrieved_at: 0,
            },
        )]
        .into_iter()
        .collect();
        let mut restarted = SimVehicle::new(&spec, 7, 0);
        restarted.resume(&stored);
        let again = odometer(&restarted.advance(60_000)).expect("odometer");
        assert!(again >= recorded, "{again} < {recorded}");
    }
}
