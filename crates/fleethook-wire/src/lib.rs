//! fleethook's wire formats, with no I/O: what goes over the network between fleethook and an
//! application, byte for byte as Smartcar sends it.
//!
//! - [`signing`]: `SC-Signature`, the verification challenge, Standard Webhooks signatures.
//! - [`catalog`]: Smartcar's signal schema (codes, names, groups, body shapes, validation).
//! - [`signal`]: a vehicle's latest value of one signal, and where renderers read them from.
//! - [`v2`]: the Smartcar v2.0 vehicle-API endpoint bodies (`/battery`, `/charge`, …).
//! - [`payload`]: the webhook bodies of every generation (v2.0, v3.0, v4.0) and per-attempt stamping.
//! - [`error`]: Smartcar's error body.
//! - [`units`], [`time`], [`json`]: unit conversion, ISO times, JSON that survives a JavaScript round trip.
//! - [`samples`]: a believable vehicle with a value for every signal, for test payloads.
//!
//! Every payload is compact JSON with keys in Smartcar's order and numbers written the way
//! JavaScript writes them, so that `JSON.stringify(JSON.parse(body)) == body`: Smartcar's Node
//! SDK verifies signatures over the re-serialized body. A receiver can depend on this crate
//! alone to verify and parse what fleethook sends.

pub mod catalog;
pub mod error;
pub mod json;
pub mod payload;
pub mod samples;
pub mod signal;
pub mod signing;
pub mod time;
pub mod units;
pub mod v2;
