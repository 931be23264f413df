//! The platform's records: applications, vehicles, webhooks, subscriptions and deliveries, as
//! the store keeps them and the API and dispatcher use them.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::clock::Millis;

/// A tenant: owns vehicles, webhooks and deliveries. Its management token (AMT) authenticates
/// the management API and keys `SC-Signature` and the verification challenge.
#[derive(Debug, Clone, PartialEq)]
pub struct App {
    pub id: String,
    pub name: String,
    pub management_token: String,
    pub created_at: Millis,
}

/// Whether a vehicle's data is real or comes from the simulator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VehicleMode {
    Live,
    Simulated,
}

impl VehicleMode {
    pub fn as_str(self) -> &'static str {
        match self {
            VehicleMode::Live => "live",
            VehicleMode::Simulated => "simulated",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "live" => Some(VehicleMode::Live),
            "simulated" => Some(VehicleMode::Simulated),
            _ => None,
        }
    }
}

/// A vehicle of one user of one application.
#[derive(Debug, Clone, PartialEq)]
pub struct Vehicle {
    pub id: String,
    pub app_id: String,
    pub user_id: String,
    /// Authorises the Smartcar-compatible vehicle API for this user's vehicles.
    pub access_token: String,
    pub make: String,
    pub model: String,
    pub year: i32,
    pub vin: String,
    pub mode: VehicleMode,
    /// Under the fleet simulator's control.
    pub simulated: bool,
    pub created_at: Millis,
}

/// An error the vehicle's source reports (for example expired owner credentials), active until
/// a later ingest leaves it out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VehicleErrorState {
    #[serde(rename = "type")]
    pub error_type: String,
    pub code: String,
    pub description: Option<String>,
    #[serde(default)]
    pub signals: Vec<String>,
}

/// The four kinds of webhook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum WebhookKind {
    Scheduled,
    Dynamic,
    EventBased,
    VehicleState,
}

impl WebhookKind {
    pub fn as_str(self) -> &'static str {
        match self {
            WebhookKind::Scheduled => "scheduled",
            WebhookKind::Dynamic => "dynamic",
            WebhookKind::EventBased => "eventBased",
            WebhookKind::VehicleState => "vehicleState",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "scheduled" => Some(WebhookKind::Scheduled),
            "dynamic" => Some(WebhookKind::Dynamic),
            "eventBased" => Some(WebhookKind::EventBased),
            "vehicleState" => Some(WebhookKind::VehicleState),
            _ => None,
        }
    }

    /// vehicleState speaks v4.0; the others use the v2.0 verify envelope.
    pub fn is_v4(self) -> bool {
        self == WebhookKind::VehicleState
    }
}

/// Lifecycle of a webhook: only `Enabled` webhooks receive anything but the challenge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WebhookStatus {
    Unverified,
    Enabled,
    Disabled,
}

impl WebhookStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            WebhookStatus::Unverified => "unverified",
            WebhookStatus::Enabled => "enabled",
            WebhookStatus::Disabled => "disabled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "unverified" => Some(WebhookStatus::Unverified),
            "enabled" => Some(WebhookStatus::Enabled),
            "disabled" => Some(WebhookStatus::Disabled),
            _ => None,
        }
    }
}

/// A webhook: where to deliver, what kind, and the kind's own settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Webhook {
    pub id: String,
    pub app_id: String,
    pub name: String,
    pub kind: WebhookKind,
    pub callback_uri: String,
    pub error_callback_uri: Option<String>,
    /// The kind fields as validated JSON (schedule/endpoints/units, events, triggers/data).
    pub config: Value,
    pub status: WebhookStatus,
    pub disabled_reason: Option<String>,
    pub signing_secret: String,
    /// The secret before the last rotation, still signing beside the new one until it expires.
    pub previous_secret: Option<String>,
    pub previous_secret_expires_at: Option<Millis>,
    pub max_payload_bytes: i64,
    pub created_at: Millis,
    pub updated_at: Millis,
}

impl Webhook {
    /// The secrets that sign a delivery at `now`: the current one, and the previous one while
    /// its rotation grace period lasts.
    pub fn active_secrets(&self, now: Millis) -> Vec<&str> {
        let mut secrets = vec![self.signing_secret.as_str()];
        if let (Some(prev), Some(until)) = (&self.previous_secret, self.previous_secret_expires_at)
        {
            if now < until {
                secrets.push(prev.as_str());
            }
        }
        secrets
    }
}

/// A vehicle subscribed to a webhook.
#[derive(Debug, Clone, PartialEq)]
pub struct Subscription {
    pub webhook_id: String,
    pub vehicle_id: String,
    pub created_at: Millis,
}

/// Why a payload is in the outbox; it decides the retry road.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryPurpose {
    /// The verification challenge: one attempt, answered synchronously.
    Verify,
    /// A test payload (mode test): the same road as an event.
    Test,
    /// A real event of the webhook's kind.
    Event,
}

impl DeliveryPurpose {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryPurpose::Verify => "verify",
            DeliveryPurpose::Test => "test",
            DeliveryPurpose::Event => "event",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "verify" => Some(DeliveryPurpose::Verify),
            "test" => Some(DeliveryPurpose::Test),
            "event" => Some(DeliveryPurpose::Event),
            _ => None,
        }
    }
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryStatus {
    Pending,
    Succeeded,
    Failed,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Succeeded => "succeeded",
            DeliveryStatus::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(DeliveryStatus::Pending),
            "succeeded" => Some(DeliveryStatus::Succeeded),
            "failed" => Some(DeliveryStatus::Failed),
            _ => None,
        }
    }
}

/// A payload to put in the outbox.
#[derive(Debug, Clone, PartialEq)]
pub struct NewDelivery {
    pub id: String,
    pub app_id: String,
    pub webhook_id: String,
    /// Stable across retries: the `webhook-id` header and the v4 `eventId`.
    pub event_id: String,
    pub purpose: DeliveryPurpose,
    /// The URI this payload goes to (the error callback for v4 errors).
    pub target_uri: String,
    /// Rendered body; v3/v4 bodies get a fresh delivery id and time stamped in per attempt.
    pub body: String,
    /// A short label for the log: `VEHICLE_STATE`, `scheduled`, `verify`, …
    pub event_type: String,
    /// Vehicles the payload speaks of, for the vehicle page and filters.
    pub vehicle_ids: Vec<String>,
    /// When the first attempt is due (platform time); `None` keeps it out of the dispatcher's
    /// claims (verification is attempted by the caller itself).
    pub next_attempt_at: Option<Millis>,
    pub created_at: Millis,
}

/// A delivery as the log shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub id: String,
    pub app_id: String,
    pub webhook_id: String,
    pub event_id: String,
    pub purpose: DeliveryPurpose,
    pub target_uri: String,
    pub body: String,
    pub event_type: String,
    pub vehicle_ids: Vec<String>,
    pub status: DeliveryStatus,
    pub attempt_count: i64,
    pub next_attempt_at: Option<Millis>,
    pub last_error: Option<String>,
    pub created_at: Millis,
    pub updated_at: Millis,
}

/// One HTTP attempt of a delivery.
#[derive(Debug, Clone, PartialEq)]
pub struct Attempt {
    pub delivery_id: String,
    /// 1 for the first attempt.
    pub number: i64,
    /// The `deliveryId` the attempt carried on the wire (v3/v4), else a fresh id.
    pub wire_delivery_id: String,
    pub started_at: Millis,
    pub status_code: Option<i64>,
    pub duration_ms: i64,
    pub error: Option<String>,
    /// Up to a few KB of what the receiver answered, for the log and verification.
    pub response_body: Option<String>,
}

/// A delivery together with everything the dispatcher needs to send it, as claimed from the
/// outbox under a lease.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimedDelivery {
    pub delivery: Delivery,
    /// Shared by the deliveries of one claim that go to the same webhook.
    pub webhook: Arc<Webhook>,
    /// The application's management token: the `SC-Signature` key.
    pub management_token: String,
}

/// What happened to a delivery after an attempt (or a decision not to attempt).
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Succeeded,
    /// Try again at this platform time.
    RetryAt(Millis),
    /// No more tries.
    Failed,
}

/// The dispatcher's report on one delivery, written back in batches.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    pub delivery_id: String,
    /// The attempt made, if an HTTP request was sent.
    pub attempt: Option<Attempt>,
    pub outcome: Outcome,
    pub last_error: Option<String>,
    /// Disable the delivery's webhook with this reason (410, retries exhausted).
    pub disable_webhook: Option<(String, String)>,
    pub at: Millis,
}

/// A page request: `limit` rows after skipping `offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub limit: i64,
    pub offset: i64,
}

impl Default for Page {
    fn default() -> Self {
        Page {
            limit: 50,
            offset: 0,
        }
    }
}
