//! What every store implementation needs alike: JSON in and out of text columns, JSON
//! equality by value, enum parsing, mapping unique violations to `Conflict`, and splitting a
//! completion batch into runs that multi-row statements can apply safely.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;

use super::{StoreError, StoreResult};
use crate::model::{Completion, Webhook};

/// Maps a unique-constraint violation to `Conflict` with a message naming what is taken.
pub(crate) fn conflict(what: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |err| match &err {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            StoreError::Conflict(format!("{what} ({})", db.message()))
        }
        _ => StoreError::Database(err),
    }
}

pub(crate) fn to_json<T: Serialize + ?Sized>(value: &T) -> StoreResult<String> {
    serde_json::to_string(value)
        .map_err(|e| StoreError::Corrupt(format!("cannot encode JSON: {e}")))
}

pub(crate) fn from_json<T: serde::de::DeserializeOwned>(text: &str, what: &str) -> StoreResult<T> {
    serde_json::from_str(text)
        .map_err(|e| StoreError::Corrupt(format!("{what} is not valid JSON: {e}")))
}

pub(crate) fn parse_enum<T>(
    text: &str,
    parse: fn(&str) -> Option<T>,
    what: &str,
) -> StoreResult<T> {
    parse(text).ok_or_else(|| StoreError::Corrupt(format!("unknown {what} {text:?}")))
}

/// JSON equality by value: object keys in any order, and `1` equal to `1.0`, as a JSON reader
/// (or Postgres `jsonb`) sees them. A body re-encoded by a source must not count as a change.
pub(crate) fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            // Integers compare exactly; only a float on either side compares as f64, so two
            // large integers never collapse into one through rounding.
            x == y || ((x.is_f64() || y.is_f64()) && x.as_f64() == y.as_f64())
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| json_eq(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

/// Splits completions into runs of at most `max` with no delivery twice, so that each run can
/// be written with multi-row statements (an `UPDATE … FROM` matching one delivery twice would
/// apply an arbitrary one) while runs keep the batch's order.
pub(crate) fn distinct_runs(completions: &[Completion], max: usize) -> Vec<&[Completion]> {
    let mut runs = Vec::new();
    let mut start = 0;
    let mut ids: HashSet<&str> = HashSet::new();
    for (i, c) in completions.iter().enumerate() {
        if i - start == max || !ids.insert(c.delivery_id.as_str()) {
            runs.push(&completions[start..i]);
            start = i;
            ids.clear();
            ids.insert(c.delivery_id.as_str());
        }
    }
    runs.push(&completions[start..]);
    runs
}

/// Rows of `webhook columns…, vehicle_id` (the webhook decoded by `decode` from column 0, its
/// id first, the vehicle id in column `vehicle_column`) grouped by vehicle, in row order. A
/// webhook many vehicles share (a fleet on a few webhooks) is decoded once and shared.
pub(crate) fn group_by_vehicle<R>(
    rows: &[R],
    decode: fn(&R, usize) -> StoreResult<Webhook>,
    vehicle_column: usize,
) -> StoreResult<HashMap<String, Vec<Arc<Webhook>>>>
where
    R: sqlx::Row,
    usize: sqlx::ColumnIndex<R>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let mut by_vehicle: HashMap<String, Vec<Arc<Webhook>>> = HashMap::new();
    let mut decoded: HashMap<String, Arc<Webhook>> = HashMap::new();
    for row in rows {
        let webhook_id: String = row.try_get(0)?;
        let webhook = match decoded.get(&webhook_id) {
            Some(webhook) => webhook.clone(),
            None => {
                let webhook = Arc::new(decode(row, 0)?);
                decoded.insert(webhook_id, webhook.clone());
                webhook
            }
        };
        let vehicle_id: String = row.try_get(vehicle_column)?;
        by_vehicle.entry(vehicle_id).or_default().push(webhook);
    }
    Ok(by_vehicle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Outcome;

    #[test]
    fn json_equality_ignores_key_order_and_number_spelling() {
        use serde_json::json;
        let a: Value = serde_json::from_str(r#"{"unit":"percent","value":78}"#).expect("json");
        let b: Value = serde_json::from_str(r#"{"value":78.0,"unit":"percent"}"#).expect("json");
        assert!(json_eq(&a, &b));
        assert!(!json_eq(&json!({"value": 78}), &json!({"value": 79})));
        assert!(!json_eq(&json!([1, 2]), &json!([2, 1])));
        assert!(!json_eq(&json!(u64::MAX), &json!(u64::MAX - 1)));
        assert!(!json_eq(&json!({"a": 1}), &json!({"a": 1, "b": null})));
    }

    #[test]
    fn runs_never_hold_a_delivery_twice_and_keep_the_order() {
        let c = |id: &str| Completion {
            delivery_id: id.to_string(),
            attempt: None,
            outcome: Outcome::Succeeded,
            last_error: None,
            disable_webhook: None,
            at: 0,
        };
        let batch = [c("a"), c("b"), c("a"), c("c"), c("d")];
        let ids = |runs: Vec<&[Completion]>| -> Vec<Vec<String>> {
            runs.iter()
                .map(|r| r.iter().map(|c| c.delivery_id.clone()).collect())
                .collect()
        };
        assert_eq!(
            ids(distinct_runs(&batch, 10)),
            vec![vec!["a", "b"], vec!["a", "c", "d"]]
        );
        assert_eq!(
            ids(distinct_runs(&batch, 2)),
            vec![vec!["a", "b"], vec!["a", "c"], vec!["d"]]
        );
    }
}
