//! Delivery: the only code that sends HTTP. The dispatcher claims due payloads from the outbox,
//! signs them, sends them over one pooled client with an SSRF guard, and records every attempt.

pub mod dispatcher;
pub mod http;
pub mod parsed_urls;
pub mod retry;
pub mod slow_lane;

pub use dispatcher::{AttemptReport, DispatchError, Dispatcher, DispatcherSettings};
pub use http::{check_target, is_forbidden_ip, validate_callback_uri, DeliveryClient};
