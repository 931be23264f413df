//! Unit systems and conversions for the v2.0 endpoint bodies.
//!
//! Rounding: a value already in the requested system passes through untouched (it is what the
//! source reported). A converted value is rounded to 2 decimals (miles to ~16 m, gallons to
//! 0.01, psi to 0.01): more digits would only be conversion noise such as `62.13711922373339`,
//! and fewer would lose precision the source had. Fractions made from percentages keep 4
//! decimals, so a percentage with 2 decimals loses nothing.

use serde::{Deserialize, Serialize};

/// Kilometres in a mile (international mile).
pub const KM_PER_MILE: f64 = 1.609_344;
/// Litres in a US gallon.
pub const LITERS_PER_GALLON: f64 = 3.785_411_784;
/// Kilopascals in a pound per square inch.
pub const KPA_PER_PSI: f64 = 6.894_757_293_168_361;

/// The unit system of v2.0 bodies (`sc-unit-system`, a scheduled webhook's `units`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UnitSystem {
    /// Kilometres, litres, kilopascals.
    #[default]
    Metric,
    /// Miles, US gallons, psi.
    Imperial,
}

impl UnitSystem {
    /// `"metric"` or `"imperial"`, in any case.
    pub fn parse(s: &str) -> Option<Self> {
        if s.eq_ignore_ascii_case("metric") {
            Some(UnitSystem::Metric)
        } else if s.eq_ignore_ascii_case("imperial") {
            Some(UnitSystem::Imperial)
        } else {
            None
        }
    }

    /// `"metric"` or `"imperial"`.
    pub fn as_str(self) -> &'static str {
        match self {
            UnitSystem::Metric => "metric",
            UnitSystem::Imperial => "imperial",
        }
    }

    /// The unit this system uses for a dimension, in the catalog's vocabulary.
    pub fn unit(self, dimension: Dimension) -> &'static str {
        match (self, dimension) {
            (UnitSystem::Metric, Dimension::Distance) => "kilometers",
            (UnitSystem::Imperial, Dimension::Distance) => "miles",
            (UnitSystem::Metric, Dimension::Volume) => "liters",
            (UnitSystem::Imperial, Dimension::Volume) => "gallons",
            (UnitSystem::Metric, Dimension::Pressure) => "kilopascals",
            (UnitSystem::Imperial, Dimension::Pressure) => "psi",
        }
    }
}

impl std::fmt::Display for UnitSystem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A quantity the v2.0 bodies convert between systems.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dimension {
    Distance,
    Volume,
    Pressure,
}

/// Kilometres to miles.
pub fn km_to_miles(km: f64) -> f64 {
    km / KM_PER_MILE
}

/// Miles to kilometres.
pub fn miles_to_km(miles: f64) -> f64 {
    miles * KM_PER_MILE
}

/// Litres to US gallons.
pub fn liters_to_gallons(liters: f64) -> f64 {
    liters / LITERS_PER_GALLON
}

/// US gallons to litres.
pub fn gallons_to_liters(gallons: f64) -> f64 {
    gallons * LITERS_PER_GALLON
}

/// Kilopascals to psi.
pub fn kpa_to_psi(kpa: f64) -> f64 {
    kpa / KPA_PER_PSI
}

/// Psi to kilopascals.
pub fn psi_to_kpa(psi: f64) -> f64 {
    psi * KPA_PER_PSI
}

/// Rounds to `decimals` places; `k / 10^d` is correctly rounded, so it prints as the short
/// decimal (`0.58`, never `0.5800000000000001`).
pub fn round_to(x: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (x * scale).round() / scale
}

/// A percentage as a fraction of one (`58` → `0.58`), to 4 decimals.
pub fn percent_to_fraction(percent: f64) -> f64 {
    round_to(percent / 100.0, 4)
}

/// Which system a unit string names, for a dimension; `None` when unrecognised. Accepts the
/// spellings seen in Smartcar's documentation and real deliveries (`kilometers`, `km`, `kPa`…).
pub fn system_of(unit: &str, dimension: Dimension) -> Option<UnitSystem> {
    let u = unit.to_ascii_lowercase();
    let (metric, imperial): (&[&str], &[&str]) = match dimension {
        Dimension::Distance => (
            &["kilometers", "kilometres", "kilometer", "km"],
            &["miles", "mile", "mi"],
        ),
        Dimension::Volume => (
            &["liters", "litres", "liter", "l"],
            &["gallons", "gallon", "gal"],
        ),
        Dimension::Pressure => (&["kilopascals", "kilopascal", "kpa", "bar"], &["psi"]),
    };
    if metric.contains(&u.as_str()) {
        Some(UnitSystem::Metric)
    } else if imperial.contains(&u.as_str()) {
        Some(UnitSystem::Imperial)
    } else {
        None
    }
}

/// `value`, given in `unit` (`None` or unrecognised: the catalog's metric unit), expressed in
/// the target system. See the module doc for rounding.
///
/// Pressures in `bar` are multiplied by 100 to kilopascals, except values above 20: real
/// deliveries label kilopascal values (`258`) as bar, and no tyre holds 20 bar.
pub fn express(value: f64, unit: Option<&str>, dimension: Dimension, target: UnitSystem) -> f64 {
    let from = unit
        .and_then(|u| system_of(u, dimension))
        .unwrap_or(UnitSystem::Metric);
    let is_bar =
        dimension == Dimension::Pressure && unit.is_some_and(|u| u.eq_ignore_ascii_case("bar"));
    let (value, converted) = if is_bar && value <= 20.0 {
        (value * 100.0, true)
    } else {
        (value, false)
    };
    if from == target {
        return if converted { round_to(value, 2) } else { value };
    }
    let out = match (dimension, target) {
        (Dimension::Distance, UnitSystem::Imperial) => km_to_miles(value),
        (Dimension::Distance, UnitSystem::Metric) => miles_to_km(value),
        (Dimension::Volume, UnitSystem::Imperial) => liters_to_gallons(value),
        (Dimension::Volume, UnitSystem::Metric) => gallons_to_liters(value),
        (Dimension::Pressure, UnitSystem::Imperial) => kpa_to_psi(value),
        (Dimension::Pressure, UnitSystem::Metric) => psi_to_kpa(value),
    };
    round_to(out, 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_systems_parse_and_serialize_lowercase() {
        assert_eq!(UnitSystem::parse("metric"), Some(UnitSystem::Metric));
        assert_eq!(UnitSystem::parse("Imperial"), Some(UnitSystem::Imperial));
        assert_eq!(UnitSystem::parse("kelvin"), None);
        assert_eq!(
            serde_json::to_string(&UnitSystem::Imperial).unwrap(),
            r#""imperial""#
        );
        assert_eq!(
            serde_json::from_str::<UnitSystem>(r#""metric""#).unwrap(),
            UnitSystem::Metric
        );
        assert_eq!(UnitSystem::Metric.as_str(), "metric");
        assert_eq!(UnitSystem::default(), UnitSystem::Metric);
    }

    #[test]
    fn conversions_match_known_values() {
        assert!((km_to_miles(100.0) - 62.137_119_223_733_4).abs() < 1e-9);
        assert!((liters_to_gallons(3.785_411_784) - 1.0).abs() < 1e-12);
        assert!((kpa_to_psi(250.0) - 36.259_433).abs() < 1e-5);
        assert!((miles_to_km(km_to_miles(283.2)) - 283.2).abs() < 1e-9);
        assert!((psi_to_kpa(kpa_to_psi(250.0)) - 250.0).abs() < 1e-9);
        assert!((gallons_to_liters(liters_to_gallons(45.5)) - 45.5).abs() < 1e-9);
    }

    #[test]
    fn express_passes_same_system_values_through_and_rounds_converted_ones() {
        assert_eq!(
            express(
                283.2,
                Some("kilometers"),
                Dimension::Distance,
                UnitSystem::Metric
            ),
            283.2
        );
        assert_eq!(
            express(283.2, None, Dimension::Distance, UnitSystem::Metric),
            283.2
        );
        assert_eq!(
            express(283.2, Some("km"), Dimension::Distance, UnitSystem::Imperial),
            175.97
        );
        assert_eq!(
            express(
                100.0,
                Some("miles"),
                Dimension::Distance,
                UnitSystem::Imperial
            ),
            100.0
        );
        assert_eq!(
            express(
                100.0,
                Some("miles"),
                Dimension::Distance,
                UnitSystem::Metric
            ),
            160.93
        );
        assert_eq!(
            express(
                45.5,
                Some("liters"),
                Dimension::Volume,
                UnitSystem::Imperial
            ),
            12.02
        );
        assert_eq!(
            express(
                250.0,
                Some("kPa"),
                Dimension::Pressure,
                UnitSystem::Imperial
            ),
            36.26
        );
        assert_eq!(
            express(36.0, Some("psi"), Dimension::Pressure, UnitSystem::Metric),
            248.21
        );
    }

    #[test]
    fn bar_is_converted_unless_the_value_is_plainly_kilopascals() {
        assert_eq!(
            express(2.5, Some("bar"), Dimension::Pressure, UnitSystem::Metric),
            250.0
        );
        assert_eq!(
            express(258.0, Some("bar"), Dimension::Pressure, UnitSystem::Metric),
            258.0
        );
        assert_eq!(
            express(2.5, Some("bar"), Dimension::Pressure, UnitSystem::Imperial),
            36.26
        );
    }

    #[test]
    fn fractions_keep_four_decimals_and_print_short() {
        assert_eq!(percent_to_fraction(58.0).to_string(), "0.58");
        assert_eq!(percent_to_fraction(57.3).to_string(), "0.573");
        assert_eq!(percent_to_fraction(33.33).to_string(), "0.3333");
        assert_eq!(percent_to_fraction(100.0), 1.0);
    }
}
