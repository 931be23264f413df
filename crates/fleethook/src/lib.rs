//! fleethook: a self-hosted webhook platform for connected-vehicle data, wire-compatible with
//! Smartcar's webhooks. The binary (`main.rs`) is a thin shell over this library.
//!
//! The flow: a source writes signals (`api::ingest`, later the simulator) → triggers decide a
//! webhook is due → payloads are rendered with `fleethook_wire` → the outbox (`store`) keeps
//! them durably → the dispatcher (`delivery`) signs and sends them, with retries and a log.

pub mod api;
pub mod bench;
pub mod clock;
pub mod config;
pub mod delivery;
pub mod demo;
pub mod ids;
pub mod ingest;
pub mod kinds;
pub mod metrics;
pub mod model;
pub mod render;
pub mod server;
pub mod simulation;
pub mod sources;
pub mod stats;
pub mod store;
pub mod triggers;
