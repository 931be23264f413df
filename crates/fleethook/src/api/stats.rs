//! `GET /api/v1/stats`: what the dashboard's charts draw, for one webhook or the whole
//! application: attempts per minute by outcome and attempt latency percentiles over the last
//! `minutes` minutes of platform time. Computed from the store (see `crate::stats`), so every
//! node serving the dashboard shows the same numbers.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::Json;
use fleethook_wire::time::iso_millis;
use serde_json::{json, Map, Value};

use super::error::{ApiError, ApiResult};
use super::extract::{number_param, AppAuth};
use super::lookup;
use crate::server::SharedState;
use crate::stats::{self, Outcomes, Percentiles};

/// The window when `minutes` is not given.
const DEFAULT_MINUTES: i64 = 60;
/// The longest window: six hours of bars is as much as a chart can show.
const MAX_MINUTES: i64 = 360;
/// The query parameters this endpoint reads; anything else is refused by name.
const PARAMETERS: &[&str] = &["webhookId", "minutes"];

/// Milliseconds to one decimal: finer is noise on a chart.
fn ms(value: Option<f64>) -> Value {
    value
        .map(|v| json!((v * 10.0).round() / 10.0))
        .unwrap_or(Value::Null)
}

fn counts(into: &mut Map<String, Value>, o: &Outcomes, p: &Percentiles) {
    into.insert("succeeded".into(), json!(o.succeeded));
    into.insert("retried".into(), json!(o.retried));
    into.insert("failed".into(), json!(o.failed));
    into.insert("attempts".into(), json!(o.attempts()));
    into.insert("p50".into(), ms(p.p50));
    into.insert("p90".into(), ms(p.p90));
    into.insert("p99".into(), ms(p.p99));
}

/// `GET /api/v1/stats?webhookId=&minutes=`
pub async fn get(
    State(state): State<SharedState>,
    AppAuth(app): AppAuth,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    if let Some(unknown) = query.keys().find(|k| !PARAMETERS.contains(&k.as_str())) {
        return Err(ApiError::validation(format!(
            "{unknown} is not a parameter of this endpoint (webhookId, minutes)"
        )));
    }
    let minutes = number_param(&query, "minutes", DEFAULT_MINUTES, 1, MAX_MINUTES)?;
    let webhook_id = match query.get("webhookId").map(|s| s.trim()) {
        None => None,
        Some("") => return Err(ApiError::validation("webhookId must not be empty")),
        Some(id) => Some(lookup::webhook(&state, &app, id).await?.id),
    };
    let now = state.clock.now_ms();
    let (from, to) = stats::window(now, minutes);
    let rows = state
        .store
        .attempt_stats(&app.id, webhook_id.as_deref(), from, to)
        .await?;
    let summary = stats::summarize(&rows, from, to);

    let series: Vec<Value> = summary
        .minutes
        .iter()
        .map(|m| {
            let mut obj = Map::new();
            obj.insert("minute".into(), json!(iso_millis(m.minute)));
            counts(&mut obj, &m.outcomes, &m.latency);
            Value::Object(obj)
        })
        .collect();
    let webhooks: Vec<Value> = summary
        .webhooks
        .iter()
        .map(|w| {
            let mut obj = Map::new();
            obj.insert("webhookId".into(), json!(w.webhook_id));
            counts(&mut obj, &w.outcomes, &w.latency);
            obj.insert("successRate".into(), json!(w.outcomes.success_rate()));
            Value::Object(obj)
        })
        .collect();
    let mut totals = Map::new();
    counts(&mut totals, &summary.outcomes, &summary.latency);
    totals.insert("successRate".into(), json!(summary.outcomes.success_rate()));
    Ok(Json(json!({
        "webhookId": webhook_id,
        "minutes": minutes,
        "from": iso_millis(from),
        "to": iso_millis(to),
        "now": iso_millis(now),
        "totals": totals,
        "series": series,
        "webhooks": webhooks,
    })))
}
