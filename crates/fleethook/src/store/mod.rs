//! The store: one trait over everything fleethook keeps, with batch-shaped calls so that the
//! hot paths (ingest, outbox claims, completions) are one round trip per batch, not per row.
//! `sqlite` is the embedded implementation (one node), `postgres` the shared one (several
//! nodes share the work through leases); `conformance` is the suite every implementation must
//! pass.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use fleethook_wire::signal::SignalValue;
use serde_json::Value;

use crate::clock::Millis;
use crate::model::*;
use crate::stats::AttemptCount;

mod checkpointer;
mod codec;
mod diff;
mod fresh_payloads;
mod lookup_cache;
mod memory_leases;
pub mod postgres;
pub mod sqlite;
mod sqlite_memory;
mod sqlite_writer;

pub mod conformance;

/// What can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique value (token, id, VIN of one app) is taken.
    #[error("conflict: {0}")]
    Conflict(String),
    /// Another process holds the database (a second `serve` on one SQLite file).
    #[error("{0}")]
    Locked(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("corrupt record: {0}")]
    Corrupt(String),
    /// The SQLite connection of the dispatcher's rounds failed (`sqlite::round`).
    #[error("database error: {0}")]
    Round(#[from] rusqlite::Error),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// The arguments of one [`Store::claim_due`], for the calls that pass a claim along.
#[derive(Debug, Clone, Copy)]
pub struct ClaimRequest<'a> {
    /// Platform time: deliveries due at or before it are claimable.
    pub now: Millis,
    /// Real time: leases that ended at or before it are free.
    pub lease_now: Millis,
    /// Real time the new leases end.
    pub lease_until: Millis,
    pub limit: i64,
    pub per_webhook: i64,
    pub skip_webhooks: &'a [String],
}

impl ClaimRequest<'_> {
    /// This claim, made on its own.
    pub async fn run<S: Store + ?Sized>(&self, store: &S) -> StoreResult<Vec<ClaimedDelivery>> {
        store
            .claim_due(
                self.now,
                self.lease_now,
                self.lease_until,
                self.limit,
                self.per_webhook,
                self.skip_webhooks,
            )
            .await
    }
}

/// A signal whose value an ingest changed.
#[derive(Debug, Clone, PartialEq)]
pub struct SignalChange {
    pub code: String,
    /// The body before the ingest; `None` when the vehicle had no value yet.
    pub previous: Option<Value>,
    pub current: Value,
}

/// What one ingest changed, computed inside the transaction that applied it, so two racing
/// ingests never both report (or both miss) the same change.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct IngestApplied {
    pub changes: Vec<SignalChange>,
    /// Errors that became active with this ingest.
    pub raised: Vec<VehicleErrorState>,
    /// Errors that were active and are no longer.
    pub resolved: Vec<VehicleErrorState>,
}

/// Renders the payloads an ingest's changes call for, from what changed and the vehicle's
/// signals after it. The store calls it inside the ingest's transaction, so the payloads are
/// in the outbox exactly when the change is recorded: neither lost nor sent for a change that
/// did not happen.
pub type RenderChanges<'a> =
    &'a (dyn Fn(&IngestApplied, &HashMap<String, SignalValue>) -> Vec<NewDelivery> + Send + Sync);

/// One ingest of a batch ([`Store::apply_ingest_batch`]).
#[derive(Clone, Copy)]
pub struct IngestItem<'a> {
    pub vehicle_id: &'a str,
    pub signals: &'a [SignalValue],
    /// The vehicle's full set of active errors, when the ingest gives it.
    pub errors: Option<&'a [VehicleErrorState]>,
    pub now: Millis,
    /// Renders the payloads of the item's changes; `None` when no webhook wants them.
    pub render: Option<RenderChanges<'a>>,
}

/// Filters for the delivery log.
#[derive(Debug, Clone, Default)]
pub struct DeliveryFilter {
    pub status: Option<DeliveryStatus>,
    pub vehicle_id: Option<String>,
}

/// A vehicle with the latest value of each of its signals.
#[derive(Debug, Clone, PartialEq)]
pub struct VehicleSignals {
    pub vehicle: Vehicle,
    pub signals: HashMap<String, SignalValue>,
}

/// A scheduled webhook whose boundary has come.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduleDue {
    pub webhook: Webhook,
    /// The boundary stored as next to deliver.
    pub boundary_at: Millis,
    /// The last vehicle id already enqueued for it (`None`: not started).
    pub cursor: Option<String>,
}

/// One step of delivering a boundary: the payloads of a page and where the schedule stands
/// after it, applied only if the schedule still is where the step was read (`boundary_at`,
/// `expected_cursor`), so a step is never applied twice.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduleProgress {
    pub webhook_id: String,
    /// Fence: the boundary the store held when this step was read.
    pub boundary_at: Millis,
    /// Fence: the cursor the store held.
    pub expected_cursor: Option<String>,
    /// The boundary this step delivers (a later one when a missed boundary is caught up).
    pub delivering_boundary_at: Millis,
    /// More pages follow after this vehicle id.
    pub new_cursor: Option<String>,
    /// With no `new_cursor`: the boundary is done and this is the next one; both `None`
    /// stops the schedule.
    pub next_boundary_at: Option<Millis>,
}

/// A dynamic subscription whose time has come, with what rendering it needs.
#[derive(Debug, Clone, PartialEq)]
pub struct DynamicDue {
    pub webhook: Webhook,
    pub vehicle: Vehicle,
    pub signals: HashMap<String, SignalValue>,
    pub due_at: Millis,
}

/// Moves one dynamic subscription from `due_at` (the fence) to `next_due_at`.
#[derive(Debug, Clone, PartialEq)]
pub struct DynamicAdvance {
    pub webhook_id: String,
    pub vehicle_id: String,
    pub due_at: Millis,
    pub next_due_at: Millis,
}

/// Everything fleethook keeps. Every call that names an application's object takes the
/// application id, so one tenant can never reach another's rows.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    // --- applications ---
    async fn create_app(&self, app: &App) -> StoreResult<()>;
    async fn app(&self, id: &str) -> StoreResult<Option<App>>;
    async fn app_by_token(&self, token: &str) -> StoreResult<Option<App>>;
    async fn list_apps(&self) -> StoreResult<Vec<App>>;
    /// Replaces an application's management token (a configured token overrides the stored
    /// one at start). Conflict if another application has it.
    async fn set_app_token(&self, app_id: &str, token: &str) -> StoreResult<()>;

    // --- vehicles ---
    async fn create_vehicle(&self, vehicle: &Vehicle) -> StoreResult<()>;
    /// Creates many vehicles at once (a fleet import), all or none: a store that can does it
    /// in one transaction. Conflict as [`Store::create_vehicle`]. The default creates them one
    /// by one.
    async fn create_vehicles(&self, vehicles: &[Vehicle]) -> StoreResult<()> {
        for vehicle in vehicles {
            self.create_vehicle(vehicle).await?;
        }
        Ok(())
    }
    async fn vehicle(&self, app_id: &str, id: &str) -> StoreResult<Option<Vehicle>>;
    /// The vehicle whose access token this is (the token's user may own others).
    async fn vehicle_by_token(&self, token: &str) -> StoreResult<Option<Vehicle>>;
    /// Vehicles of an application, optionally of one user, oldest first; and the total count.
    async fn list_vehicles(
        &self,
        app_id: &str,
        user_id: Option<&str>,
        page: Page,
    ) -> StoreResult<(Vec<Vehicle>, i64)>;
    /// Removes the vehicle with its signals, errors and subscriptions.
    async fn delete_vehicle(&self, app_id: &str, id: &str) -> StoreResult<bool>;

    // --- signals ---
    /// Applies one ingest atomically: upserts the signals and, when `errors` is given, makes
    /// it the vehicle's full set of active errors. Returns what changed.
    async fn apply_ingest(
        &self,
        vehicle_id: &str,
        signals: &[SignalValue],
        errors: Option<&[VehicleErrorState]>,
        now: Millis,
    ) -> StoreResult<IngestApplied>;
    /// `apply_ingest`, and in the same transaction the payloads `render` makes of the changes
    /// (only called when something changed). Returns what changed and how many payloads were
    /// enqueued.
    async fn apply_ingest_rendered(
        &self,
        vehicle_id: &str,
        signals: &[SignalValue],
        errors: Option<&[VehicleErrorState]>,
        now: Millis,
        render: RenderChanges<'_>,
    ) -> StoreResult<(IngestApplied, usize)>;
    /// Whether [`Store::apply_ingest_batch`] shares one transaction among a batch's items, so
    /// that ingests are worth queueing for it (a single-writer store); a store that can apply
    /// ingests in parallel says no and gets them one by one, concurrently.
    fn groups_ingests(&self) -> bool {
        false
    }
    /// Several ingests, applied in order as if one after another (a later item sees what an
    /// earlier one wrote), each with the payloads its `render` makes. One result per item, in
    /// order: a failing item fails alone. A store may group the items into one transaction
    /// (group commit: the ingest queue hands over what arrived while the previous batch was
    /// written), falling back to one transaction per item when the group fails; the default
    /// simply applies them one by one.
    async fn apply_ingest_batch(
        &self,
        items: &[IngestItem<'_>],
    ) -> Vec<StoreResult<(IngestApplied, usize)>> {
        let mut results = Vec::with_capacity(items.len());
        for item in items {
            results.push(match item.render {
                Some(render) => {
                    self.apply_ingest_rendered(
                        item.vehicle_id,
                        item.signals,
                        item.errors,
                        item.now,
                        render,
                    )
                    .await
                }
                None => self
                    .apply_ingest(item.vehicle_id, item.signals, item.errors, item.now)
                    .await
                    .map(|applied| (applied, 0)),
            });
        }
        results
    }
    /// The latest value of every signal of a vehicle.
    async fn signals(&self, vehicle_id: &str) -> StoreResult<HashMap<String, SignalValue>>;
    /// The vehicle's active errors.
    async fn vehicle_errors(&self, vehicle_id: &str) -> StoreResult<Vec<VehicleErrorState>>;

    // --- webhooks ---
    async fn create_webhook(&self, webhook: &Webhook) -> StoreResult<()>;
    async fn webhook(&self, app_id: &str, id: &str) -> StoreResult<Option<Webhook>>;
    async fn list_webhooks(&self, app_id: &str) -> StoreResult<Vec<Webhook>>;
    /// Writes every mutable field of the webhook (name, URIs, config, status, secrets, …).
    async fn update_webhook(&self, webhook: &Webhook) -> StoreResult<()>;
    /// Removes the webhook with its subscriptions; pending deliveries fail.
    async fn delete_webhook(&self, app_id: &str, id: &str) -> StoreResult<bool>;

    // --- subscriptions ---
    /// Subscribes; `false` when the vehicle already was.
    async fn subscribe(&self, webhook_id: &str, vehicle_id: &str, at: Millis) -> StoreResult<bool>;
    /// Subscribes many vehicles at once (one transaction where the store can); returns how
    /// many were not subscribed before. The default subscribes them one by one.
    async fn subscribe_many(
        &self,
        webhook_id: &str,
        vehicle_ids: &[String],
        at: Millis,
    ) -> StoreResult<u64> {
        let mut added = 0;
        for vehicle_id in vehicle_ids {
            added += u64::from(self.subscribe(webhook_id, vehicle_id, at).await?);
        }
        Ok(added)
    }
    /// Unsubscribes; `false` when it was not subscribed.
    async fn unsubscribe(&self, webhook_id: &str, vehicle_id: &str) -> StoreResult<bool>;
    async fn subscriptions(
        &self,
        webhook_id: &str,
        page: Page,
    ) -> StoreResult<(Vec<Subscription>, i64)>;

    // --- outbox ---
    /// Adds payloads to the outbox in one transaction.
    async fn enqueue_many(&self, deliveries: &[NewDelivery]) -> StoreResult<()>;
    /// Claims up to `limit` pending deliveries due at `now` (platform time) whose lease is free
    /// (`lease_now` is real time), leasing them until `lease_until` (real time), in due order.
    /// At most `per_webhook` of them go to one webhook: the claim looks at the first `limit`
    /// due deliveries and takes each webhook's first `per_webhook`, so a claim may return fewer
    /// than `limit` while more are due. Deliveries of webhooks in `skip_webhooks` (already at
    /// their in-flight cap) are left for later.
    async fn claim_due(
        &self,
        now: Millis,
        lease_now: Millis,
        lease_until: Millis,
        limit: i64,
        per_webhook: i64,
        skip_webhooks: &[String],
    ) -> StoreResult<Vec<ClaimedDelivery>>;
    /// Claims one delivery by id regardless of its due time (manual retry, verification).
    async fn claim_one(
        &self,
        app_id: &str,
        delivery_id: &str,
        lease_until: Millis,
    ) -> StoreResult<Option<ClaimedDelivery>>;
    /// Records attempts and outcomes, releases leases, disables webhooks: one transaction.
    async fn complete_many(&self, completions: &[Completion]) -> StoreResult<()>;
    /// Records `completions` as [`Store::complete_many`] does, then claims as
    /// [`Store::claim_due`] does: the dispatcher's one call per round. The first result is the
    /// completions', the second the claim's; the claim runs even when the completions fail,
    /// so a failing write never stops delivery. This default runs the two side by side; a
    /// store with one write connection does both in one turn of it, so that they never wait
    /// for each other.
    async fn complete_and_claim(
        &self,
        completions: &[Completion],
        claim: &ClaimRequest<'_>,
    ) -> (StoreResult<()>, StoreResult<Vec<ClaimedDelivery>>) {
        let complete = async {
            if completions.is_empty() {
                Ok(())
            } else {
                self.complete_many(completions).await
            }
        };
        tokio::join!(complete, claim.run(self))
    }
    /// The earliest `next_attempt_at` of pending deliveries, to know how long to sleep.
    async fn next_due_at(&self) -> StoreResult<Option<Millis>>;
    /// Releases the leases this node may hold, at start after a crash: on a single-node store
    /// every lease; on a store shared by several nodes only the leases of this store handle's
    /// own node, never another live node's (theirs end by completion or by expiry). Returns
    /// how many deliveries were released.
    async fn release_all_leases(&self) -> StoreResult<u64>;
    /// Pending deliveries: the outbox depth.
    async fn outbox_depth(&self) -> StoreResult<i64>;

    // --- delivery log ---
    async fn delivery(&self, app_id: &str, id: &str) -> StoreResult<Option<Delivery>>;
    async fn attempts(&self, delivery_id: &str) -> StoreResult<Vec<Attempt>>;
    /// A webhook's deliveries, newest first, and the total matching the filter.
    async fn list_deliveries(
        &self,
        app_id: &str,
        webhook_id: &str,
        filter: &DeliveryFilter,
        page: Page,
    ) -> StoreResult<(Vec<Delivery>, i64)>;

    /// The webhooks a vehicle is subscribed to (for change triggers).
    async fn subscribed_webhooks(&self, vehicle_id: &str) -> StoreResult<Vec<Webhook>>;

    /// [`Store::subscribed_webhooks`] of several vehicles in one read, by vehicle id; a vehicle
    /// with no subscription is absent. The ingest queue asks it once per group of ingests. A
    /// webhook that several vehicles share is one value, shared.
    async fn subscribed_webhooks_many(
        &self,
        vehicle_ids: &[&str],
    ) -> StoreResult<HashMap<String, Vec<Arc<Webhook>>>>;

    // --- time-based triggers ---
    /// Sets the next boundary of a scheduled webhook and clears its cursor; `None` stops it.
    async fn schedule_set(&self, webhook_id: &str, boundary_at: Option<Millis>) -> StoreResult<()>;
    /// Scheduled webhooks whose boundary is at or before `now`, earliest first. On a store
    /// shared by several nodes the rows returned are leased to this node for a short real
    /// time, so other nodes skip them while it delivers; `schedule_progress` renews the lease
    /// page by page and ends it with the boundary. The fence of `schedule_progress`, not the
    /// lease, is what keeps a boundary from being delivered twice.
    async fn due_schedules(&self, now: Millis, limit: i64) -> StoreResult<Vec<ScheduleDue>>;
    /// Vehicles subscribed to the webhook before `subscribed_before`, by vehicle id after
    /// `after_vehicle`, with their signals.
    async fn schedule_page(
        &self,
        webhook_id: &str,
        subscribed_before: Millis,
        after_vehicle: Option<&str>,
        limit: i64,
    ) -> StoreResult<Vec<VehicleSignals>>;
    /// Applies a step with its payloads in one transaction; `false` (and nothing written) when
    /// the schedule is no longer where the step was read.
    async fn schedule_progress(
        &self,
        step: &ScheduleProgress,
        deliveries: &[NewDelivery],
    ) -> StoreResult<bool>;
    /// Sets when a dynamic subscription is next due (`None`: not a dynamic subscription).
    async fn set_subscription_due(
        &self,
        webhook_id: &str,
        vehicle_id: &str,
        due: Option<Millis>,
    ) -> StoreResult<()>;
    /// Brings the vehicle's dynamic subscriptions due later than `at_latest` forward to it (an
    /// EV was plugged in); returns how many moved.
    async fn pull_dynamic_due(&self, vehicle_id: &str, at_latest: Millis) -> StoreResult<u64>;
    /// Dynamic subscriptions due at or before `now`, earliest first, with vehicle and signals.
    /// Leased to this node on a shared store, like `due_schedules`; `dynamic_progress` ends the
    /// leases.
    async fn due_dynamic(&self, now: Millis, limit: i64) -> StoreResult<Vec<DynamicDue>>;
    /// Advances dynamic subscriptions and enqueues their payloads in one transaction; `false`
    /// (and nothing written) when any of them moved since it was read.
    async fn dynamic_progress(
        &self,
        advances: &[DynamicAdvance],
        deliveries: &[NewDelivery],
    ) -> StoreResult<bool>;
    /// The earliest time a schedule or dynamic subscription is due.
    async fn next_trigger_at(&self) -> StoreResult<Option<Millis>>;

    // --- several nodes ---
    /// Whether other fleethook processes may work on this store at the same time. Their work
    /// does not wake this process's loops, so the dispatcher and the trigger loop then also
    /// look at the store every second or so.
    fn multi_node(&self) -> bool {
        false
    }

    /// How long, in all since the store opened, its one write connection has been held, for a
    /// store that has one (SQLite): every write waits for it, so the share of a period it was
    /// held says how close the writes are to their limit. `None` for a store without one.
    fn write_busy(&self) -> Option<std::time::Duration> {
        None
    }

    /// Takes or renews this node's lease on work that one node at a time does for everyone
    /// (`role`, e.g. the fleet simulator) for `lease_ms` of real time; `false` while another
    /// node holds a live lease on it. A single-node store always leads.
    async fn lead(&self, role: &str, lease_ms: Millis) -> StoreResult<bool> {
        let _ = (role, lease_ms);
        Ok(true)
    }

    // --- dashboard ---
    /// Attempts of the application's deliveries (of one webhook when `webhook_id` is given)
    /// that started in `[from, to)` platform time, counted by webhook, minute, outcome and
    /// latency bucket; run `crate::stats::attempt_stats_sql` so every store agrees. Rows with
    /// a zero count are left out.
    async fn attempt_stats(
        &self,
        app_id: &str,
        webhook_id: Option<&str>,
        from: Millis,
        to: Millis,
    ) -> StoreResult<Vec<AttemptCount>>;
    /// The application's deliveries that speak of a vehicle, over all its webhooks, newest
    /// first, at most `limit`.
    async fn vehicle_deliveries(
        &self,
        app_id: &str,
        vehicle_id: &str,
        limit: i64,
    ) -> StoreResult<Vec<Delivery>>;
}

/// Shared handle to the store.
pub type SharedStore = Arc<dyn Store>;
