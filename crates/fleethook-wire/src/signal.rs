//! A vehicle's latest value of one signal, and the trait renderers read signals through.

use std::collections::{BTreeMap, HashMap};
use std::hash::BuildHasher;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The latest value of one signal of one vehicle. Times are epoch milliseconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SignalValue {
    /// Catalog code, e.g. `tractionbattery-stateofcharge`.
    pub code: String,
    /// The body in the catalog's shape, e.g. `{"unit":"percent","value":78}`.
    pub body: Value,
    /// When the vehicle (the OEM) last updated the value, if known.
    pub oem_updated_at: Option<i64>,
    /// When fleethook received it.
    pub retrieved_at: i64,
}

impl SignalValue {
    /// The body's numeric `value`.
    pub fn number(&self) -> Option<f64> {
        self.body.get("value").and_then(Value::as_f64)
    }

    /// The body's boolean `value`.
    pub fn bool_value(&self) -> Option<bool> {
        self.body.get("value").and_then(Value::as_bool)
    }

    /// The body's string `value`.
    pub fn str_value(&self) -> Option<&str> {
        self.body.get("value").and_then(Value::as_str)
    }

    /// The body's `unit`.
    pub fn unit(&self) -> Option<&str> {
        self.body.get("unit").and_then(Value::as_str)
    }

    /// The time the data describes: `oem_updated_at`, else `retrieved_at`.
    pub fn data_time(&self) -> i64 {
        self.oem_updated_at.unwrap_or(self.retrieved_at)
    }
}

/// Where renderers read a vehicle's signals from.
pub trait SignalSource {
    /// The latest value of the signal with this code.
    fn signal(&self, code: &str) -> Option<&SignalValue>;
}

impl<S: BuildHasher> SignalSource for HashMap<String, SignalValue, S> {
    fn signal(&self, code: &str) -> Option<&SignalValue> {
        self.get(code)
    }
}

impl SignalSource for BTreeMap<String, SignalValue> {
    fn signal(&self, code: &str) -> Option<&SignalValue> {
        self.get(code)
    }
}

/// A list searched in order; for a handful of signals a map is not worth building.
impl SignalSource for [SignalValue] {
    fn signal(&self, code: &str) -> Option<&SignalValue> {
        self.iter().find(|s| s.code == code)
    }
}

impl SignalSource for Vec<SignalValue> {
    fn signal(&self, code: &str) -> Option<&SignalValue> {
        self.as_slice().signal(code)
    }
}

impl<T: SignalSource + ?Sized> SignalSource for &T {
    fn signal(&self, code: &str) -> Option<&SignalValue> {
        (**self).signal(code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn soc() -> SignalValue {
        SignalValue {
            code: "tractionbattery-stateofcharge".into(),
            body: json!({"unit":"percent","value":78}),
            oem_updated_at: Some(10),
            retrieved_at: 20,
        }
    }

    #[test]
    fn every_source_finds_by_code() {
        let hash: HashMap<String, SignalValue> = [(soc().code, soc())].into();
        let btree: BTreeMap<String, SignalValue> = [(soc().code, soc())].into();
        let list = vec![soc()];
        let sources: [&dyn SignalSource; 3] = [&hash, &btree, &list];
        for source in sources {
            assert_eq!(source.signal("tractionbattery-stateofcharge"), Some(&soc()));
            assert_eq!(source.signal("odometer-traveleddistance"), None);
        }
    }

    #[test]
    fn accessors_read_the_body() {
        let s = soc();
        assert_eq!(s.number(), Some(78.0));
        assert_eq!(s.unit(), Some("percent"));
        assert_eq!(s.bool_value(), None);
        assert_eq!(s.data_time(), 10);
        assert_eq!(
            SignalValue {
                oem_updated_at: None,
                ..s
            }
            .data_time(),
            20
        );
    }

    #[test]
    fn serializes_camel_case() {
        assert_eq!(
            serde_json::to_string(&soc()).unwrap(),
            r#"{"code":"tractionbattery-stateofcharge","body":{"unit":"percent","value":78},"oemUpdatedAt":10,"retrievedAt":20}"#
        );
    }
}
