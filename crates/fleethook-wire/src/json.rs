//! JSON that survives a JavaScript round trip unchanged.
//!
//! Smartcar's Node SDK checks `SC-Signature` over `JSON.stringify(JSON.parse(body))`, so every
//! body must already be in the form JavaScript writes. Strings and key order already agree
//! between serde_json (with `preserve_order`) and JavaScript; numbers need care:
//! - serde_json writes a whole `f64` as `78.0`, JavaScript as `78`: [`canonicalize`] turns
//!   whole floats into integers.
//! - Integers beyond ±2^53 lose digits in JavaScript, and floats of magnitude in [1e-6, 1e-5)
//!   are written `1e-6` by serde_json but `0.000001` by JavaScript: [`is_js_exact`] finds them,
//!   so input validation can refuse them.

use serde::Serialize;
use serde_json::{Number, Value};

/// The largest integer JavaScript carries exactly (`Number.MAX_SAFE_INTEGER`).
pub const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// Serializes a payload type as compact JSON.
///
/// The payload types have string keys and no custom serializers, so serialization cannot fail.
pub fn to_compact<T: Serialize + ?Sized>(value: &T) -> String {
    serde_json::to_string(value).expect("payload types serialize infallibly")
}

/// A number as JavaScript would write it back: whole values become integers; non-finite
/// values (which JSON cannot hold) become `null`.
pub fn number(x: f64) -> Value {
    if x.is_finite() && x.fract() == 0.0 && x.abs() <= MAX_SAFE_INTEGER as f64 {
        // Exact: the value is whole and within i64 range.
        return Value::from(x as i64);
    }
    Number::from_f64(x).map_or(Value::Null, Value::Number)
}

/// Rewrites every whole float in `value` as an integer, so `78.0` is written `78`.
pub fn canonicalize(value: &mut Value) {
    match value {
        Value::Number(n) if n.is_f64() => {
            if let Some(f) = n.as_f64() {
                *value = number(f);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(canonicalize),
        Value::Object(map) => map.values_mut().for_each(canonicalize),
        _ => {}
    }
}

/// A canonicalized copy of `value`.
pub fn canonical(value: &Value) -> Value {
    let mut copy = value.clone();
    canonicalize(&mut copy);
    copy
}

/// Whether JavaScript parses and writes `n` back to the same text serde_json writes (after
/// [`canonicalize`]).
pub fn is_js_exact(n: &Number) -> bool {
    if let Some(u) = n.as_u64() {
        return u <= MAX_SAFE_INTEGER;
    }
    if let Some(i) = n.as_i64() {
        return i.unsigned_abs() <= MAX_SAFE_INTEGER;
    }
    let Some(f) = n.as_f64() else { return false };
    if f.fract() == 0.0 {
        return f.abs() <= MAX_SAFE_INTEGER as f64;
    }
    !(1e-6..1e-5).contains(&f.abs())
}

/// The path (`body.values[2].limit`) of the first number in `value` that [`is_js_exact`]
/// refuses, if any.
pub fn first_inexact_number(value: &Value, path: &str) -> Option<String> {
    match value {
        Value::Number(n) => (!is_js_exact(n)).then(|| path.to_string()),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, item)| first_inexact_number(item, &format!("{path}[{i}]"))),
        Value::Object(map) => map
            .iter()
            .find_map(|(k, v)| first_inexact_number(v, &format!("{path}.{k}"))),
        _ => None,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    /// Asserts that `body` is compact, re-serializes to itself, and holds only numbers that
    /// JavaScript writes the same way: `JSON.stringify(JSON.parse(body)) == body`.
    pub(crate) fn assert_js_round_trip(body: &str) {
        let parsed: Value = serde_json::from_str(body).expect("body is JSON");
        assert_eq!(
            serde_json::to_string(&parsed).unwrap(),
            body,
            "re-serialized body differs"
        );
        fn walk(v: &Value) {
            match v {
                Value::Number(n) => {
                    assert!(is_js_exact(n), "{n} is not JS-exact");
                    if let Some(f) = n.as_f64().filter(|_| n.is_f64()) {
                        assert!(f.fract() != 0.0, "{n} should be written as an integer");
                    }
                }
                Value::Array(items) => items.iter().for_each(walk),
                Value::Object(map) => map.values().for_each(walk),
                _ => {}
            }
        }
        walk(&parsed);
    }

    #[test]
    fn whole_floats_are_written_as_integers() {
        let mut v = json!({"a": 78.0, "b": [1.5, -2.0, 0.0], "c": {"d": 9007199254740991.0}});
        canonicalize(&mut v);
        assert_eq!(
            to_compact(&v),
            r#"{"a":78,"b":[1.5,-2,0],"c":{"d":9007199254740991}}"#
        );
        assert_eq!(number(f64::NAN), Value::Null);
        assert_eq!(number(0.58).to_string(), "0.58");
    }

    #[test]
    fn numbers_javascript_would_rewrite_are_found() {
        assert!(is_js_exact(&Number::from(MAX_SAFE_INTEGER)));
        assert!(!is_js_exact(&Number::from(MAX_SAFE_INTEGER + 1)));
        assert!(!is_js_exact(&Number::from(i64::MIN)));
        assert!(!is_js_exact(&Number::from_f64(0.000002).unwrap()));
        assert!(is_js_exact(&Number::from_f64(0.00002).unwrap()));
        assert!(is_js_exact(&Number::from_f64(2e-7).unwrap()));
        assert!(!is_js_exact(&Number::from_f64(1e300).unwrap()));
        let body = json!({"values": [{"limit": 80}, {"limit": 0.000003}]});
        assert_eq!(
            first_inexact_number(&body, "body").as_deref(),
            Some("body.values[1].limit")
        );
    }
}
