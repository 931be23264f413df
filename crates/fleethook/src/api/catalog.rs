//! `GET /api/v1/catalog`: the choices a webhook form offers (signals by group, v2.0 endpoints,
//! diagnostics events, cadences, units), straight from the code that validates them, so the
//! dashboard's wizard never offers what the API would refuse.

use axum::Json;
use fleethook_wire::catalog;
use fleethook_wire::v2::V2Path;
use serde_json::{json, Value};

/// `GET /api/v1/catalog`
pub async fn get() -> Json<Value> {
    let groups: Vec<Value> = catalog::groups()
        .into_iter()
        .map(|group| {
            let signals: Vec<Value> = catalog::all()
                .iter()
                .filter(|d| d.group == group)
                .map(|d| {
                    json!({"code": d.code, "name": d.name, "unit": d.unit, "attribute": d.attribute})
                })
                .collect();
            json!({"group": group, "signals": signals})
        })
        .collect();
    let endpoints: Vec<&str> = V2Path::all().iter().map(|p| p.as_str()).collect();
    Json(json!({
        "signalGroups": groups,
        "endpoints": endpoints,
        "events": ["DIAGNOSTIC_TROUBLE_CODES", "DIAGNOSTIC_SYSTEM_ALERTS"],
        "frequencies": ["minutely", "hourly", "daily", "weekly", "monthly"],
        "units": ["metric", "imperial"],
    }))
}
