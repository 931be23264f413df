//! The OpenAPI 3 document, built from the route table (`routes::ROUTES`) and the request
//! schemas below, so it lists exactly the routes the router serves.

use serde_json::{json, Map, Value};

use super::routes::{Auth, ROUTES};

/// JSON schemas of the request bodies, by the names the route table uses.
fn schemas() -> Value {
    let signal_codes = json!({"type": "array", "items": {"type": "string", "description": "a signal code of the catalog, e.g. tractionbattery-stateofcharge"}});
    json!({
        "Error": {
            "type": "object",
            "description": "Smartcar's error shape",
            "properties": {
                "type": {"type": "string"}, "code": {"type": ["string", "null"]},
                "description": {"type": "string"}, "docURL": {"type": "string"},
                "statusCode": {"type": "integer"}, "requestId": {"type": "string"},
                "resolution": {"type": "object", "properties": {"type": {"type": ["string", "null"]}}}
            },
            "required": ["type", "code", "description", "docURL", "statusCode", "requestId", "resolution"]
        },
        "CreateVehicle": {
            "type": "object", "additionalProperties": false,
            "required": ["make", "model", "year"],
            "properties": {
                "make": {"type": "string"}, "model": {"type": "string"},
                "year": {"type": "integer", "minimum": 1900, "maximum": 2100},
                "vin": {"type": "string", "minLength": 17, "maxLength": 17},
                "mode": {"type": "string", "enum": ["live", "simulated"]},
                "simulate": {"type": "boolean"}, "userId": {"type": "string"}
            }
        },
        "Ingest": {
            "type": "object", "additionalProperties": false,
            "properties": {
                "signals": {"type": "array", "items": {
                    "type": "object", "required": ["code", "body"],
                    "properties": {"code": {"type": "string"}, "body": {}, "oemUpdatedAt": {"oneOf": [{"type": "integer"}, {"type": "string", "format": "date-time"}]}}
                }},
                "errors": {"type": "array", "description": "the full set of active errors; one left out is resolved", "items": {
                    "type": "object", "required": ["type", "code"],
                    "properties": {"type": {"type": "string"}, "code": {"type": "string"}, "description": {"type": "string"}, "signals": signal_codes}
                }}
            }
        },
        "CreateWebhook": {
            "type": "object",
            "required": ["name", "type", "callbackUri"],
            "properties": {
                "name": {"type": "string"},
                "type": {"type": "string", "enum": ["scheduled", "dynamic", "eventBased", "vehicleState"]},
                "callbackUri": {"type": "string", "format": "uri"},
                "maxPayloadBytes": {"type": "integer", "minimum": 4096},
                "schedule": {"type": "object", "description": "scheduled only", "properties": {
                    "frequency": {"type": "string", "enum": ["minutely", "hourly", "daily", "weekly", "monthly"]},
                    "interval": {"type": "integer", "minimum": 1},
                    "day": {"description": "weekly: MONDAY…SUNDAY or 1–7; monthly: 1–31"},
                    "time": {"type": "string", "pattern": "^[0-2][0-9]:[0-5][0-9]$"}
                }},
                "endpoints": {"type": "array", "description": "scheduled only", "items": {"type": "string"}},
                "units": {"type": "string", "enum": ["metric", "imperial"]},
                "events": {"type": "array", "description": "eventBased only: exactly one", "items": {"type": "string", "enum": ["DIAGNOSTIC_TROUBLE_CODES", "DIAGNOSTIC_SYSTEM_ALERTS"]}},
                "triggers": signal_codes, "data": signal_codes,
                "errorCallbackUri": {"type": "string", "format": "uri", "description": "vehicleState only"}
            }
        },
        "UpdateWebhook": {"$ref": "#/components/schemas/CreateWebhook", "description": "any subset of the create fields; type cannot change"},
        "Subscribe": {
            "type": "object", "additionalProperties": false, "required": ["vehicleId"],
            "properties": {"vehicleId": {"type": "string"}}
        },
        "Batch": {
            "type": "object", "required": ["requests"],
            "properties": {"requests": {"type": "array", "items": {"type": "object", "required": ["path"], "properties": {"path": {"type": "string"}}}}}
        }
    })
}

fn parameters(path: &str) -> Vec<Value> {
    path.split('/')
        .filter_map(|segment| segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
        .collect()
}

/// The whole document.
pub fn document() -> Value {
    let mut paths: Map<String, Value> = Map::new();
    for route in ROUTES {
        let Some(doc_path) = route.doc_path else {
            continue;
        };
        let mut operation = Map::new();
        operation.insert("tags".into(), json!([route.tag]));
        operation.insert("summary".into(), json!(route.summary));
        operation.insert(
            "operationId".into(),
            json!(format!("{}_{}", route.method, doc_path)),
        );
        operation.insert("parameters".into(), Value::Array(parameters(doc_path)));
        match route.auth {
            Auth::None => {}
            Auth::ManagementToken => {
                operation.insert("security".into(), json!([{"managementToken": []}]));
            }
            Auth::VehicleToken => {
                operation.insert("security".into(), json!([{"vehicleToken": []}]));
            }
        }
        if let Some(schema) = route.request {
            operation.insert(
                "requestBody".into(),
                json!({"required": true, "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}}),
            );
        }
        let error = json!({"description": "error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}});
        operation.insert(
            "responses".into(),
            json!({ route.success.to_string(): {"description": "success"}, "default": error }),
        );
        paths
            .entry(doc_path.to_string())
            .or_insert_with(|| Value::Object(Map::new()))
            .as_object_mut()
            .map(|item| item.insert(route.method.to_string(), Value::Object(operation)));
    }
    json!({
        "openapi": "3.1.0",
        "info": {"title": "fleethook", "version": env!("CARGO_PKG_VERSION"),
                 "description": "Self-hosted webhooks for connected-vehicle data, wire-compatible with Smartcar."},
        "paths": paths,
        "components": {
            "schemas": schemas(),
            "securitySchemes": {
                "managementToken": {"type": "http", "scheme": "bearer", "description": "the application's management token (AMT)"},
                "vehicleToken": {"type": "http", "scheme": "bearer", "description": "a vehicle access token"}
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_documented_route_is_in_the_document_and_every_schema_exists() {
        let doc = document();
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        for route in ROUTES {
            if let Some(path) = route.doc_path {
                assert!(
                    doc["paths"][path][route.method].is_object(),
                    "{} {path}",
                    route.method
                );
            }
            if let Some(schema) = route.request {
                assert!(schemas.contains_key(schema), "missing schema {schema}");
            }
        }
    }
}
