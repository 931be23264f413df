//! Sources of vehicle data: the simulator (and the ingest API's shared apply path).

pub mod simulator;
