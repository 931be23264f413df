//! How records look in management API answers: one function per record, so every endpoint
//! shows the same object the same way. Times are ISO 8601 UTC with milliseconds.

use fleethook_wire::time::iso_millis;
use serde_json::{json, Map, Value};

use crate::model::{Attempt, Delivery, Subscription, Vehicle, Webhook};

fn opt_time(ms: Option<i64>) -> Value {
    ms.map(|t| Value::String(iso_millis(t)))
        .unwrap_or(Value::Null)
}

/// A vehicle; `with_token` adds its access token (on create only).
pub fn vehicle(v: &Vehicle, with_token: bool) -> Value {
    let mut obj = Map::new();
    obj.insert("id".into(), json!(v.id));
    obj.insert("userId".into(), json!(v.user_id));
    if with_token {
        obj.insert("accessToken".into(), json!(v.access_token));
    }
    obj.insert("make".into(), json!(v.make));
    obj.insert("model".into(), json!(v.model));
    obj.insert("year".into(), json!(v.year));
    obj.insert("vin".into(), json!(v.vin));
    obj.insert("mode".into(), json!(v.mode.as_str()));
    obj.insert("simulated".into(), json!(v.simulated));
    obj.insert("createdAt".into(), json!(iso_millis(v.created_at)));
    Value::Object(obj)
}

/// A webhook with its kind fields flattened in; `with_secret` adds the signing secret.
pub fn webhook(w: &Webhook, with_secret: bool) -> Value {
    let mut obj = Map::new();
    obj.insert("id".into(), json!(w.id));
    obj.insert("name".into(), json!(w.name));
    obj.insert("type".into(), json!(w.kind.as_str()));
    obj.insert("callbackUri".into(), json!(w.callback_uri));
    if let Some(uri) = &w.error_callback_uri {
        obj.insert("errorCallbackUri".into(), json!(uri));
    }
    if let Value::Object(fields) = &w.config {
        for (k, v) in fields {
            obj.insert(k.clone(), v.clone());
        }
    }
    obj.insert("status".into(), json!(w.status.as_str()));
    obj.insert("disabledReason".into(), json!(w.disabled_reason));
    obj.insert("maxPayloadBytes".into(), json!(w.max_payload_bytes));
    if with_secret {
        obj.insert("signingSecret".into(), json!(w.signing_secret));
    }
    obj.insert("createdAt".into(), json!(iso_millis(w.created_at)));
    obj.insert("updatedAt".into(), json!(iso_millis(w.updated_at)));
    Value::Object(obj)
}

/// A subscription as the subscriptions list shows it.
pub fn subscription(s: &Subscription) -> Value {
    json!({"vehicleId": s.vehicle_id, "subscribedAt": iso_millis(s.created_at)})
}

/// A delivery in the log; `detail` adds the body (as JSON) and nothing else changes.
pub fn delivery(d: &Delivery, attempts: Option<&[Attempt]>) -> Value {
    let mut obj = Map::new();
    obj.insert("id".into(), json!(d.id));
    obj.insert("webhookId".into(), json!(d.webhook_id));
    obj.insert("eventId".into(), json!(d.event_id));
    obj.insert("eventType".into(), json!(d.event_type));
    obj.insert("purpose".into(), json!(d.purpose.as_str()));
    obj.insert("status".into(), json!(d.status.as_str()));
    obj.insert("targetUri".into(), json!(d.target_uri));
    obj.insert("vehicleIds".into(), json!(d.vehicle_ids));
    obj.insert("attemptCount".into(), json!(d.attempt_count));
    obj.insert("nextAttemptAt".into(), opt_time(d.next_attempt_at));
    obj.insert("lastError".into(), json!(d.last_error));
    obj.insert("createdAt".into(), json!(iso_millis(d.created_at)));
    obj.insert("updatedAt".into(), json!(iso_millis(d.updated_at)));
    if let Some(attempts) = attempts {
        let body = serde_json::from_str::<Value>(&d.body)
            .unwrap_or_else(|_| Value::String(d.body.clone()));
        obj.insert("body".into(), body);
        obj.insert(
            "attempts".into(),
            Value::Array(attempts.iter().map(attempt).collect()),
        );
    }
    Value::Object(obj)
}

/// One HTTP attempt.
pub fn attempt(a: &Attempt) -> Value {
    json!({
        "number": a.number,
        "deliveryId": a.wire_delivery_id,
        "at": iso_millis(a.started_at),
        "statusCode": a.status_code,
        "durationMs": a.duration_ms,
        "error": a.error,
        "responseBody": a.response_body,
    })
}

/// A page of a list: `{"<key>": [...], "paging": {"count": total, "offset"}}`.
pub fn page(key: &str, items: Vec<Value>, total: i64, offset: i64) -> Value {
    let mut obj = Map::new();
    obj.insert(key.into(), Value::Array(items));
    obj.insert("paging".into(), json!({"count": total, "offset": offset}));
    Value::Object(obj)
}
