//! The route table: one row per method and path, with the handler and what the OpenAPI
//! document says of it. The router and `/openapi.json` are both built from this table, so a
//! route cannot exist without being documented.

use axum::routing::{delete, get, patch, post, MethodRouter};

use super::{
    catalog, dashboard, deliveries, ops, smartcar, stats, subscriptions, vehicles, webhooks,
};
use crate::server::SharedState;

/// Which token a route wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    None,
    /// `Authorization: Bearer <management token>`.
    ManagementToken,
    /// `Authorization: Bearer <vehicle access token>`.
    VehicleToken,
}

/// One method on one path.
pub struct Route {
    pub method: &'static str,
    /// The axum path (`{id}` parameters, `{*rest}` wildcards).
    pub path: &'static str,
    /// The path as the OpenAPI document shows it; `None` hides the route (an alias).
    pub doc_path: Option<&'static str>,
    pub tag: &'static str,
    pub summary: &'static str,
    pub auth: Auth,
    /// Name of the request body schema in `openapi::schemas`.
    pub request: Option<&'static str>,
    /// The status of a successful answer.
    pub success: u16,
    pub handler: fn() -> MethodRouter<SharedState>,
}

macro_rules! route {
    ($method:literal, $path:literal, $doc:expr, $tag:literal, $summary:literal, $auth:ident, $request:expr, $success:literal, $handler:expr) => {
        Route {
            method: $method,
            path: $path,
            doc_path: $doc,
            tag: $tag,
            summary: $summary,
            auth: Auth::$auth,
            request: $request,
            success: $success,
            handler: || $handler,
        }
    };
}

/// Every route fleethook serves.
pub static ROUTES: &[Route] = &[
    route!("get", "/healthz", Some("/healthz"), "operations", "200 while the process is up", None, None, 200, get(ops::healthz)),
    route!("get", "/metrics", Some("/metrics"), "operations", "Prometheus metrics", None, None, 200, get(ops::metrics)),
    route!("get", "/openapi.json", Some("/openapi.json"), "operations", "This document", None, None, 200, get(ops::openapi)),
    route!("post", "/api/v1/vehicles", Some("/api/v1/vehicles"), "vehicles", "Create a vehicle (and its user's access token)", ManagementToken, Some("CreateVehicle"), 201, post(vehicles::create)),
    route!("get", "/api/v1/vehicles", Some("/api/v1/vehicles"), "vehicles", "List vehicles (paged: limit, offset; filter: userId)", ManagementToken, None, 200, get(vehicles::list)),
    route!("get", "/api/v1/vehicles/{id}", Some("/api/v1/vehicles/{id}"), "vehicles", "One vehicle with its current signals and active errors", ManagementToken, None, 200, get(vehicles::get_one)),
    route!("delete", "/api/v1/vehicles/{id}", Some("/api/v1/vehicles/{id}"), "vehicles", "Remove a vehicle", ManagementToken, None, 204, delete(vehicles::delete)),
    route!("post", "/api/v1/vehicles/{id}/signals", Some("/api/v1/vehicles/{id}/signals"), "vehicles", "Ingest signals and the full set of active errors (all or nothing)", ManagementToken, Some("Ingest"), 202, post(vehicles::ingest)),
    route!("post", "/api/v1/webhooks", Some("/api/v1/webhooks"), "webhooks", "Create a webhook (status unverified)", ManagementToken, Some("CreateWebhook"), 201, post(webhooks::create)),
    route!("get", "/api/v1/webhooks", Some("/api/v1/webhooks"), "webhooks", "List webhooks", ManagementToken, None, 200, get(webhooks::list)),
    route!("get", "/api/v1/webhooks/{id}", Some("/api/v1/webhooks/{id}"), "webhooks", "One webhook with its signing secret", ManagementToken, None, 200, get(webhooks::get_one)),
    route!("patch", "/api/v1/webhooks/{id}", Some("/api/v1/webhooks/{id}"), "webhooks", "Change a webhook (a new callbackUri needs verification)", ManagementToken, Some("UpdateWebhook"), 200, patch(webhooks::update)),
    route!("delete", "/api/v1/webhooks/{id}", Some("/api/v1/webhooks/{id}"), "webhooks", "Remove a webhook", ManagementToken, None, 204, delete(webhooks::delete)),
    route!("post", "/api/v1/webhooks/{id}/verify", Some("/api/v1/webhooks/{id}/verify"), "webhooks", "Send the verification challenge now (200 verified, 422 not)", ManagementToken, None, 200, post(webhooks::verify)),
    route!("post", "/api/v1/webhooks/{id}/test", Some("/api/v1/webhooks/{id}/test"), "webhooks", "Send one test payload of the webhook's kind", ManagementToken, None, 202, post(webhooks::test)),
    route!("post", "/api/v1/webhooks/{id}/enable", Some("/api/v1/webhooks/{id}/enable"), "webhooks", "Enable a verified webhook", ManagementToken, None, 200, post(webhooks::enable)),
    route!("post", "/api/v1/webhooks/{id}/disable", Some("/api/v1/webhooks/{id}/disable"), "webhooks", "Disable a webhook", ManagementToken, None, 200, post(webhooks::disable)),
    route!("post", "/api/v1/webhooks/{id}/rotate-secret", Some("/api/v1/webhooks/{id}/rotate-secret"), "webhooks", "New signing secret; the old one signs beside it for 24 h", ManagementToken, None, 200, post(webhooks::rotate_secret)),
    route!("get", "/api/v1/webhooks/{id}/subscriptions", Some("/api/v1/webhooks/{id}/subscriptions"), "webhooks", "Subscribed vehicles (paged)", ManagementToken, None, 200, get(webhooks::subscriptions)),
    route!("get", "/api/v1/webhooks/{id}/deliveries", Some("/api/v1/webhooks/{id}/deliveries"), "deliveries", "Delivery log, newest first (status, vehicleId, limit, offset)", ManagementToken, None, 200, get(deliveries::list_for_webhook)),
    route!("get", "/api/v1/deliveries/{id}", Some("/api/v1/deliveries/{id}"), "deliveries", "One delivery with its body and every attempt", ManagementToken, None, 200, get(deliveries::get_one)),
    route!("post", "/api/v1/deliveries/{id}/retry", Some("/api/v1/deliveries/{id}/retry"), "deliveries", "Deliver the payload again now (one attempt)", ManagementToken, None, 200, post(deliveries::retry)),
    route!("get", "/v2.0/vehicles", Some("/v2.0/vehicles"), "vehicle API", "The user's vehicle ids (limit, offset)", VehicleToken, None, 200, get(smartcar::list_vehicles)),
    route!("get", "/v2.0/vehicles/{id}", Some("/v2.0/vehicles/{id}"), "vehicle API", "Vehicle attributes {id, make, model, year}", VehicleToken, None, 200, get(smartcar::attributes)),
    route!("get", "/v2.0/vehicles/{id}/", None, "vehicle API", "Vehicle attributes (Smartcar's SDKs add a slash)", VehicleToken, None, 200, get(smartcar::attributes)),
    route!("post", "/v2.0/vehicles/{id}/batch", Some("/v2.0/vehicles/{id}/batch"), "vehicle API", "Several endpoint reads in one request", VehicleToken, Some("Batch"), 200, post(smartcar::batch)),
    route!("post", "/v2.0/vehicles/{id}/webhooks/{webhookId}", Some("/v2.0/vehicles/{id}/webhooks/{webhookId}"), "vehicle API", "Subscribe the vehicle to a webhook", VehicleToken, None, 200, post(smartcar::subscribe)),
    route!("delete", "/v2.0/vehicles/{id}/webhooks/{webhookId}", Some("/v2.0/vehicles/{id}/webhooks/{webhookId}"), "vehicle API", "Unsubscribe (with the management token)", ManagementToken, None, 200, delete(smartcar::unsubscribe)),
    route!("get", "/v2.0/vehicles/{id}/{*endpoint}", Some("/v2.0/vehicles/{id}/{endpoint}"), "vehicle API", "An endpoint: battery, charge, location, odometer, fuel, engine/oil, tires/pressure, vin (units from sc-unit-system)", VehicleToken, None, 200, get(smartcar::endpoint)),
    route!("get", "/v3/vehicles/{id}/signals", Some("/v3/vehicles/{id}/signals"), "vehicle API", "Every signal of the vehicle", VehicleToken, None, 200, get(smartcar::signals)),
    route!("get", "/v3/vehicles/{id}/signals/{code}", Some("/v3/vehicles/{id}/signals/{code}"), "vehicle API", "One signal resource", VehicleToken, None, 200, get(smartcar::signal)),
    // The dashboard and the management endpoints it needs beyond the ones above.
    route!("get", "/", Some("/"), "dashboard", "The dashboard (HTML; sign in with the management token)", None, None, 200, get(dashboard::index)),
    route!("get", "/dashboard/{*asset}", None, "dashboard", "The dashboard's scripts, styles and icon", None, None, 200, get(dashboard::asset)),
    route!("get", "/api/v1/stats", Some("/api/v1/stats"), "deliveries", "Attempts per minute by outcome and latency percentiles (webhookId, minutes 1-360, default 60)", ManagementToken, None, 200, get(stats::get)),
    route!("get", "/api/v1/catalog", Some("/api/v1/catalog"), "webhooks", "What webhook forms offer: signals by group, v2.0 endpoints, events, cadences, units", None, None, 200, get(catalog::get)),
    route!("post", "/api/v1/webhooks/{id}/subscriptions", Some("/api/v1/webhooks/{id}/subscriptions"), "webhooks", "Subscribe a vehicle of the application ({vehicleId})", ManagementToken, Some("Subscribe"), 200, post(subscriptions::create)),
    route!("get", "/api/v1/vehicles/{id}/webhooks", Some("/api/v1/vehicles/{id}/webhooks"), "vehicles", "The webhooks the vehicle is subscribed to", ManagementToken, None, 200, get(subscriptions::for_vehicle)),
    route!("get", "/api/v1/vehicles/{id}/deliveries", Some("/api/v1/vehicles/{id}/deliveries"), "deliveries", "The vehicle's latest deliveries over every webhook, newest first (limit)", ManagementToken, None, 200, get(deliveries::list_for_vehicle)),
];
