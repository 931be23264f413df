//! The shared store: PostgreSQL, for several fleethook nodes working on one database.
//!
//! Nodes share the work through leases, never through locks held across an HTTP call: a claim
//! (outbox deliveries, due schedules, due dynamic subscriptions) is one short statement that
//! picks rows with `FOR UPDATE SKIP LOCKED`, so concurrent claimers take disjoint rows without
//! waiting on each other, and stamps them with this node's id and a lease expiry in real time.
//! The row lock ends with that statement; the lease is what keeps other nodes away while the
//! work is done. A node that dies leaves leases that expire and are then claimed by the others.
//! A starting node releases only its own leases (`release_all_leases`), never a live node's.
//!
//! Batch calls are one statement per batch: rows travel as arrays and are expanded by `UNNEST`.
//!
//! The modules: `rows` decodes records, `outbox` holds the delivery queue (insert, claims,
//! completions), `ingest` applies vehicle data, `triggers` the time-based trigger rows, and
//! `scratch` makes throwaway databases for tests.

mod ingest;
mod outbox;
mod rows;
pub mod scratch;
mod triggers;

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use fleethook_wire::signal::SignalValue;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Postgres, QueryBuilder, Row};

use self::rows::*;
use super::codec::{conflict, group_by_vehicle, to_json};
use super::{
    DeliveryFilter, DynamicAdvance, DynamicDue, IngestApplied, RenderChanges, ScheduleDue,
    ScheduleProgress, Store, StoreError, StoreResult, VehicleSignals,
};
use crate::clock::Millis;
use crate::model::*;
use crate::stats::{self, AttemptCount};

/// The error recorded on pending deliveries whose webhook is gone.
const WEBHOOK_DELETED: &str = "webhook deleted";

/// Rows per multi-row insert of a fleet import (11 parameters a row, far below the 65,535
/// parameters of one statement).
const ROWS_PER_INSERT: usize = 1_000;

/// How one node uses the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgSettings {
    /// Connections in this node's pool.
    pub pool_size: u32,
    /// How long a node keeps a due schedule or dynamic subscription to itself (real time).
    /// Short: it only spares other nodes from rendering the same page (the progress fences
    /// keep a boundary from being delivered twice), and a dead node's schedules wait this long.
    pub trigger_lease: Duration,
}

impl Default for PgSettings {
    fn default() -> Self {
        PgSettings {
            pool_size: 10,
            trigger_lease: Duration::from_secs(5),
        }
    }
}

/// The shared [`Store`]: a Postgres database that several nodes may serve at once.
pub struct PgStore {
    pool: PgPool,
    /// This store handle's identity in leases: unique per process start.
    node: String,
    settings: PgSettings,
}

impl PgStore {
    /// Connects to the database at a `postgres://` or `postgresql://` URL and runs the
    /// migrations (concurrent starts wait on one another: sqlx takes an advisory lock).
    pub async fn open(url: &str) -> StoreResult<PgStore> {
        Self::open_with(url, PgSettings::default()).await
    }

    /// [`PgStore::open`] with explicit settings.
    pub async fn open_with(url: &str, settings: PgSettings) -> StoreResult<PgStore> {
        let node = format!(
            "node-{}-{}",
            std::process::id(),
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        let options =
            PgConnectOptions::from_str(url)?.application_name(&format!("fleethook {node}"));
        let pool = PgPoolOptions::new()
            .max_connections(settings.pool_size.max(2))
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await?;
        sqlx::migrate!("./migrations/postgres").run(&pool).await?;
        Ok(PgStore {
            pool,
            node,
            settings,
        })
    }

    /// This node's id, as its leases carry it.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// Closes every connection, waiting for them to finish.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Loads the signals of many vehicles with one query, keeping the vehicles' order.
    async fn with_signals(&self, vehicles: Vec<Vehicle>) -> StoreResult<Vec<VehicleSignals>> {
        if vehicles.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<&str> = vehicles.iter().map(|v| v.id.as_str()).collect();
        let rows = sqlx::query(
            "SELECT vehicle_id, code, body, oem_updated_at, retrieved_at FROM signals \
             WHERE vehicle_id = ANY($1)",
        )
        .bind(&ids)
        .fetch_all(&self.pool)
        .await?;
        attach_signals(vehicles, &rows)
    }
}

#[async_trait]
impl Store for PgStore {
    async fn create_app(&self, app: &App) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO apps (id, name, management_token, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(&app.id)
        .bind(&app.name)
        .bind(&app.management_token)
        .bind(app.created_at)
        .execute(&self.pool)
        .await
        .map_err(conflict(
            "application id or management token already in use",
        ))?;
        Ok(())
    }

    async fn app(&self, id: &str) -> StoreResult<Option<App>> {
        let row = sqlx::query(&format!("SELECT {APP_COLS} FROM apps WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(app_from_row).transpose()
    }

    async fn app_by_token(&self, token: &str) -> StoreResult<Option<App>> {
        let row = sqlx::query(&format!(
            "SELECT {APP_COLS} FROM apps WHERE management_token = $1"
        ))
        .bind(token)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(app_from_row).transpose()
    }

    async fn list_apps(&self) -> StoreResult<Vec<App>> {
        let rows = sqlx::query(&format!(
            "SELECT {APP_COLS} FROM apps ORDER BY created_at, id"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(app_from_row).collect()
    }

    async fn set_app_token(&self, app_id: &str, token: &str) -> StoreResult<()> {
        sqlx::query("UPDATE apps SET management_token = $1 WHERE id = $2")
            .bind(token)
            .bind(app_id)
            .execute(&self.pool)
            .await
            .map_err(conflict(
                "management token already in use by another application",
            ))?;
        Ok(())
    }

    async fn create_vehicle(&self, vehicle: &Vehicle) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO vehicles (id, app_id, user_id, access_token, make, model, year, vin, \
             mode, simulated, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(&vehicle.id)
        .bind(&vehicle.app_id)
        .bind(&vehicle.user_id)
        .bind(&vehicle.access_token)
        .bind(&vehicle.make)
        .bind(&vehicle.model)
        .bind(vehicle.year)
        .bind(&vehicle.vin)
        .bind(vehicle.mode.as_str())
        .bind(vehicle.simulated)
        .bind(vehicle.created_at)
        .execute(&self.pool)
        .await
        .map_err(conflict(
            "vehicle id, or VIN within the application, already in use",
        ))?;
        Ok(())
    }

    async fn create_vehicles(&self, vehicles: &[Vehicle]) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        for chunk in vehicles.chunks(ROWS_PER_INSERT) {
            let mut insert = QueryBuilder::<Postgres>::new(
                "INSERT INTO vehicles (id, app_id, user_id, access_token, make, model, year, vin, \
                 mode, simulated, created_at) ",
            );
            insert.push_values(chunk, |mut b, v| {
                b.push_bind(v.id.as_str())
                    .push_bind(v.app_id.as_str())
                    .push_bind(v.user_id.as_str())
                    .push_bind(v.access_token.as_str())
                    .push_bind(v.make.as_str())
                    .push_bind(v.model.as_str())
                    .push_bind(v.year)
                    .push_bind(v.vin.as_str())
                    .push_bind(v.mode.as_str())
                    .push_bind(v.simulated)
                    .push_bind(v.created_at);
            });
            insert.build().execute(&mut *tx).await.map_err(conflict(
                "vehicle id, or VIN within the application, already in use",
            ))?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn vehicle(&self, app_id: &str, id: &str) -> StoreResult<Option<Vehicle>> {
        let row = sqlx::query(&format!(
            "SELECT {VEHICLE_COLS} FROM vehicles v WHERE v.id = $1 AND v.app_id = $2"
        ))
        .bind(id)
        .bind(app_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| vehicle_at(&row, 0)).transpose()
    }

    async fn vehicle_by_token(&self, token: &str) -> StoreResult<Option<Vehicle>> {
        // Tokens are not unique by schema; the oldest vehicle answers deterministically.
        let row = sqlx::query(&format!(
            "SELECT {VEHICLE_COLS} FROM vehicles v WHERE v.access_token = $1 \
             ORDER BY v.created_at, v.seq LIMIT 1"
        ))
        .bind(token)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| vehicle_at(&row, 0)).transpose()
    }

    async fn list_vehicles(
        &self,
        app_id: &str,
        user_id: Option<&str>,
        page: Page,
    ) -> StoreResult<(Vec<Vehicle>, i64)> {
        // The window count gives the total from the same snapshot as the page; a page past
        // the end has no row to carry it, so it is counted apart.
        let filter = "v.app_id = $1 AND ($2::text IS NULL OR v.user_id = $2)";
        let rows = sqlx::query(&format!(
            "SELECT {VEHICLE_COLS}, COUNT(*) OVER () FROM vehicles v WHERE {filter} \
             ORDER BY v.created_at, v.seq LIMIT $3 OFFSET $4"
        ))
        .bind(app_id)
        .bind(user_id)
        .bind(page.limit)
        .bind(page.offset)
        .fetch_all(&self.pool)
        .await?;
        let total = match rows.first() {
            Some(row) => row.try_get(VEHICLE_COL_COUNT)?,
            None => {
                sqlx::query_scalar(&format!("SELECT COUNT(*) FROM vehicles v WHERE {filter}"))
                    .bind(app_id)
                    .bind(user_id)
                    .fetch_one(&self.pool)
                    .await?
            }
        };
        let vehicles = rows
            .iter()
            .map(|row| vehicle_at(row, 0))
            .collect::<StoreResult<Vec<_>>>()?;
        Ok((vehicles, total))
    }

    async fn delete_vehicle(&self, app_id: &str, id: &str) -> StoreResult<bool> {
        // Signals, errors and subscriptions go with it by ON DELETE CASCADE; deliveries stay as
        // the log.
        let done = sqlx::query("DELETE FROM vehicles WHERE id = $1 AND app_id = $2")
            .bind(id)
            .bind(app_id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn apply_ingest(
        &self,
        vehicle_id: &str,
        signals: &[SignalValue],
        errors: Option<&[VehicleErrorState]>,
        now: Millis,
    ) -> StoreResult<IngestApplied> {
        Ok(self.ingest(vehicle_id, signals, errors, now, None).await?.0)
    }

    async fn apply_ingest_rendered(
        &self,
        vehicle_id: &str,
        signals: &[SignalValue],
        errors: Option<&[VehicleErrorState]>,
        now: Millis,
        render: RenderChanges<'_>,
    ) -> StoreResult<(IngestApplied, usize)> {
        self.ingest(vehicle_id, signals, errors, now, Some(render))
            .await
    }

    async fn signals(&self, vehicle_id: &str) -> StoreResult<HashMap<String, SignalValue>> {
        let rows = sqlx::query(
            "SELECT code, body, oem_updated_at, retrieved_at FROM signals WHERE vehicle_id = $1",
        )
        .bind(vehicle_id)
        .fetch_all(&self.pool)
        .await?;
        let mut signals = HashMap::with_capacity(rows.len());
        for row in &rows {
            let value = signal_at(row, 0)?;
            signals.insert(value.code.clone(), value);
        }
        Ok(signals)
    }

    async fn vehicle_errors(&self, vehicle_id: &str) -> StoreResult<Vec<VehicleErrorState>> {
        let rows = sqlx::query(
            "SELECT error_type, code, description, signals FROM vehicle_errors \
             WHERE vehicle_id = $1 ORDER BY position",
        )
        .bind(vehicle_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(error_from_row).collect()
    }

    async fn create_webhook(&self, webhook: &Webhook) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO webhooks (id, app_id, name, kind, callback_uri, error_callback_uri, \
             config, status, disabled_reason, signing_secret, previous_secret, \
             previous_secret_expires_at, max_payload_bytes, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
        )
        .bind(&webhook.id)
        .bind(&webhook.app_id)
        .bind(&webhook.name)
        .bind(webhook.kind.as_str())
        .bind(&webhook.callback_uri)
        .bind(&webhook.error_callback_uri)
        .bind(to_json(&webhook.config)?)
        .bind(webhook.status.as_str())
        .bind(&webhook.disabled_reason)
        .bind(&webhook.signing_secret)
        .bind(&webhook.previous_secret)
        .bind(webhook.previous_secret_expires_at)
        .bind(webhook.max_payload_bytes)
        .bind(webhook.created_at)
        .bind(webhook.updated_at)
        .execute(&self.pool)
        .await
        .map_err(conflict("webhook id already in use"))?;
        Ok(())
    }

    async fn webhook(&self, app_id: &str, id: &str) -> StoreResult<Option<Webhook>> {
        let row = sqlx::query(&format!(
            "SELECT {WEBHOOK_COLS} FROM webhooks w WHERE w.id = $1 AND w.app_id = $2"
        ))
        .bind(id)
        .bind(app_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| webhook_at(&row, 0)).transpose()
    }

    async fn list_webhooks(&self, app_id: &str) -> StoreResult<Vec<Webhook>> {
        let rows = sqlx::query(&format!(
            "SELECT {WEBHOOK_COLS} FROM webhooks w WHERE w.app_id = $1 \
             ORDER BY w.created_at, w.seq"
        ))
        .bind(app_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|row| webhook_at(row, 0)).collect()
    }

    async fn update_webhook(&self, webhook: &Webhook) -> StoreResult<()> {
        // Everything but the identity (id, application) and the creation time.
        sqlx::query(
            "UPDATE webhooks SET name = $1, kind = $2, callback_uri = $3, \
             error_callback_uri = $4, config = $5, status = $6, disabled_reason = $7, \
             signing_secret = $8, previous_secret = $9, previous_secret_expires_at = $10, \
             max_payload_bytes = $11, updated_at = $12 WHERE id = $13 AND app_id = $14",
        )
        .bind(&webhook.name)
        .bind(webhook.kind.as_str())
        .bind(&webhook.callback_uri)
        .bind(&webhook.error_callback_uri)
        .bind(to_json(&webhook.config)?)
        .bind(webhook.status.as_str())
        .bind(&webhook.disabled_reason)
        .bind(&webhook.signing_secret)
        .bind(&webhook.previous_secret)
        .bind(webhook.previous_secret_expires_at)
        .bind(webhook.max_payload_bytes)
        .bind(webhook.updated_at)
        .bind(&webhook.id)
        .bind(&webhook.app_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn delete_webhook(&self, app_id: &str, id: &str) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await?;
        // Subscriptions and the schedule go with the webhook by ON DELETE CASCADE.
        let deleted = sqlx::query("DELETE FROM webhooks WHERE id = $1 AND app_id = $2")
            .bind(id)
            .bind(app_id)
            .execute(&mut *tx)
            .await?;
        if deleted.rows_affected() == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        // The outbox must not keep what can no longer be sent: its pending deliveries fail and
        // stay in the log. An enqueue racing this holds the webhook row (FOR KEY SHARE) until
        // it commits, so its rows are visible here, or it sees the webhook gone.
        sqlx::query(
            "UPDATE deliveries SET status = 'failed', last_error = $1, next_attempt_at = NULL, \
             lease_owner = NULL, lease_until = NULL \
             WHERE webhook_id = $2 AND app_id = $3 AND status = 'pending'",
        )
        .bind(WEBHOOK_DELETED)
        .bind(id)
        .bind(app_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn subscribe(&self, webhook_id: &str, vehicle_id: &str, at: Millis) -> StoreResult<bool> {
        let done = sqlx::query(
            "INSERT INTO subscriptions (webhook_id, vehicle_id, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (webhook_id, vehicle_id) DO NOTHING",
        )
        .bind(webhook_id)
        .bind(vehicle_id)
        .bind(at)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn subscribe_many(
        &self,
        webhook_id: &str,
        vehicle_ids: &[String],
        at: Millis,
    ) -> StoreResult<u64> {
        let mut tx = self.pool.begin().await?;
        let mut added = 0;
        for chunk in vehicle_ids.chunks(ROWS_PER_INSERT) {
            let mut insert = QueryBuilder::<Postgres>::new(
                "INSERT INTO subscriptions (webhook_id, vehicle_id, created_at) ",
            );
            insert.push_values(chunk, |mut b, vehicle_id| {
                b.push_bind(webhook_id)
                    .push_bind(vehicle_id.as_str())
                    .push_bind(at);
            });
            insert.push(" ON CONFLICT (webhook_id, vehicle_id) DO NOTHING");
            added += insert.build().execute(&mut *tx).await?.rows_affected();
        }
        tx.commit().await?;
        Ok(added)
    }

    async fn unsubscribe(&self, webhook_id: &str, vehicle_id: &str) -> StoreResult<bool> {
        let done =
            sqlx::query("DELETE FROM subscriptions WHERE webhook_id = $1 AND vehicle_id = $2")
                .bind(webhook_id)
                .bind(vehicle_id)
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn subscriptions(
        &self,
        webhook_id: &str,
        page: Page,
    ) -> StoreResult<(Vec<Subscription>, i64)> {
        let rows = sqlx::query(
            "SELECT webhook_id, vehicle_id, created_at, COUNT(*) OVER () FROM subscriptions \
             WHERE webhook_id = $1 ORDER BY created_at, vehicle_id LIMIT $2 OFFSET $3",
        )
        .bind(webhook_id)
        .bind(page.limit)
        .bind(page.offset)
        .fetch_all(&self.pool)
        .await?;
        let total = match rows.first() {
            Some(row) => row.try_get(3)?,
            None => {
                sqlx::query_scalar("SELECT COUNT(*) FROM subscriptions WHERE webhook_id = $1")
                    .bind(webhook_id)
                    .fetch_one(&self.pool)
                    .await?
            }
        };
        let subscriptions = rows
            .iter()
            .map(|row| {
                Ok(Subscription {
                    webhook_id: row.try_get(0)?,
                    vehicle_id: row.try_get(1)?,
                    created_at: row.try_get(2)?,
                })
            })
            .collect::<StoreResult<Vec<_>>>()?;
        Ok((subscriptions, total))
    }

    async fn enqueue_many(&self, deliveries: &[NewDelivery]) -> StoreResult<()> {
        if deliveries.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        outbox::insert_deliveries(&mut tx, deliveries).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn claim_due(
        &self,
        now: Millis,
        lease_now: Millis,
        lease_until: Millis,
        limit: i64,
        per_webhook: i64,
        skip_webhooks: &[String],
    ) -> StoreResult<Vec<ClaimedDelivery>> {
        self.claim_due_rows(
            now,
            lease_now,
            lease_until,
            limit,
            per_webhook,
            skip_webhooks,
        )
        .await
    }

    async fn claim_one(
        &self,
        app_id: &str,
        delivery_id: &str,
        lease_until: Millis,
    ) -> StoreResult<Option<ClaimedDelivery>> {
        self.claim_one_row(app_id, delivery_id, lease_until).await
    }

    async fn complete_many(&self, completions: &[Completion]) -> StoreResult<()> {
        self.complete_rows(completions).await
    }

    async fn next_due_at(&self) -> StoreResult<Option<Millis>> {
        // Same population as claim_due (the webhook must exist), so a dispatcher told "due now"
        // finds something to claim instead of spinning.
        let due: Option<Millis> = sqlx::query_scalar(
            "SELECT d.next_attempt_at FROM deliveries d JOIN webhooks w ON w.id = d.webhook_id \
             WHERE d.status = 'pending' AND d.next_attempt_at IS NOT NULL \
             ORDER BY d.next_attempt_at LIMIT 1",
        )
        .fetch_optional(&self.pool)
        .await?;
        Ok(due)
    }

    async fn release_all_leases(&self) -> StoreResult<u64> {
        self.release_own_leases().await
    }

    async fn outbox_depth(&self) -> StoreResult<i64> {
        let depth: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM deliveries \
             WHERE status = 'pending' AND next_attempt_at IS NOT NULL",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(depth)
    }

    async fn delivery(&self, app_id: &str, id: &str) -> StoreResult<Option<Delivery>> {
        let row = sqlx::query(&format!(
            "SELECT {DELIVERY_COLS} FROM deliveries d WHERE d.id = $1 AND d.app_id = $2"
        ))
        .bind(id)
        .bind(app_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| delivery_at(&row, 0)).transpose()
    }

    async fn attempts(&self, delivery_id: &str) -> StoreResult<Vec<Attempt>> {
        let rows = sqlx::query(
            "SELECT delivery_id, number, wire_delivery_id, started_at, status_code, duration_ms, \
             error, response_body FROM attempts WHERE delivery_id = $1 ORDER BY number",
        )
        .bind(delivery_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(attempt_from_row).collect()
    }

    async fn list_deliveries(
        &self,
        app_id: &str,
        webhook_id: &str,
        filter: &DeliveryFilter,
        page: Page,
    ) -> StoreResult<(Vec<Delivery>, i64)> {
        const WHERE: &str = "WHERE d.app_id = $1 AND d.webhook_id = $2 \
             AND ($3::text IS NULL OR d.status = $3) \
             AND ($4::text IS NULL OR EXISTS (SELECT 1 FROM delivery_vehicles dv \
             WHERE dv.delivery_id = d.id AND dv.vehicle_id = $4))";
        let status = filter.status.map(DeliveryStatus::as_str);
        let vehicle = filter.vehicle_id.as_deref();
        let rows = sqlx::query(&format!(
            "SELECT {DELIVERY_COLS}, COUNT(*) OVER () FROM deliveries d {WHERE} \
             ORDER BY d.created_at DESC, d.seq DESC LIMIT $5 OFFSET $6"
        ))
        .bind(app_id)
        .bind(webhook_id)
        .bind(status)
        .bind(vehicle)
        .bind(page.limit)
        .bind(page.offset)
        .fetch_all(&self.pool)
        .await?;
        let total = match rows.first() {
            Some(row) => row.try_get(DELIVERY_COL_COUNT)?,
            None => {
                sqlx::query_scalar(&format!("SELECT COUNT(*) FROM deliveries d {WHERE}"))
                    .bind(app_id)
                    .bind(webhook_id)
                    .bind(status)
                    .bind(vehicle)
                    .fetch_one(&self.pool)
                    .await?
            }
        };
        let deliveries = rows
            .iter()
            .map(|row| delivery_at(row, 0))
            .collect::<StoreResult<Vec<_>>>()?;
        Ok((deliveries, total))
    }

    async fn attempt_stats(
        &self,
        app_id: &str,
        webhook_id: Option<&str>,
        from: Millis,
        to: Millis,
    ) -> StoreResult<Vec<AttemptCount>> {
        // attempts_by_time bounds the scan to the window; the join scopes it to the app.
        let rows = sqlx::query(&stats::attempt_stats_sql())
            .bind(from)
            .bind(to)
            .bind(app_id)
            .bind(webhook_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                let outcome: String = row.try_get("outcome")?;
                AttemptCount::from_columns(
                    row.try_get("webhook_id")?,
                    row.try_get("minute")?,
                    &outcome,
                    row.try_get("bucket")?,
                    row.try_get("n")?,
                )
                .map_err(StoreError::Corrupt)
            })
            .collect()
    }

    async fn vehicle_deliveries(
        &self,
        app_id: &str,
        vehicle_id: &str,
        limit: i64,
    ) -> StoreResult<Vec<Delivery>> {
        let rows = sqlx::query(&format!(
            "SELECT {DELIVERY_COLS} FROM deliveries d \
             WHERE d.app_id = $1 AND d.id IN \
             (SELECT dv.delivery_id FROM delivery_vehicles dv WHERE dv.vehicle_id = $2) \
             ORDER BY d.created_at DESC, d.seq DESC LIMIT $3"
        ))
        .bind(app_id)
        .bind(vehicle_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|row| delivery_at(row, 0)).collect()
    }

    async fn subscribed_webhooks(&self, vehicle_id: &str) -> StoreResult<Vec<Webhook>> {
        let rows = sqlx::query(&format!(
            "SELECT {WEBHOOK_COLS} FROM subscriptions s JOIN webhooks w ON w.id = s.webhook_id \
             WHERE s.vehicle_id = $1 ORDER BY w.created_at, w.id"
        ))
        .bind(vehicle_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|row| webhook_at(row, 0)).collect()
    }

    async fn subscribed_webhooks_many(
        &self,
        vehicle_ids: &[&str],
    ) -> StoreResult<HashMap<String, Vec<Arc<Webhook>>>> {
        if vehicle_ids.is_empty() {
            return Ok(HashMap::new());
        }
        let rows = sqlx::query(&format!(
            "SELECT {WEBHOOK_COLS}, s.vehicle_id FROM subscriptions s JOIN webhooks w ON w.id = s.webhook_id \
             WHERE s.vehicle_id = ANY($1) ORDER BY s.vehicle_id, w.created_at, w.id"
        ))
        .bind(vehicle_ids)
        .fetch_all(&self.pool)
        .await?;
        group_by_vehicle(&rows, webhook_at, WEBHOOK_COL_COUNT)
    }

    async fn schedule_set(&self, webhook_id: &str, boundary_at: Option<Millis>) -> StoreResult<()> {
        self.set_schedule(webhook_id, boundary_at).await
    }

    async fn due_schedules(&self, now: Millis, limit: i64) -> StoreResult<Vec<ScheduleDue>> {
        self.claim_schedules(now, limit).await
    }

    async fn schedule_page(
        &self,
        webhook_id: &str,
        subscribed_before: Millis,
        after_vehicle: Option<&str>,
        limit: i64,
    ) -> StoreResult<Vec<VehicleSignals>> {
        let rows = sqlx::query(&format!(
            "SELECT {VEHICLE_COLS} FROM subscriptions s JOIN vehicles v ON v.id = s.vehicle_id \
             WHERE s.webhook_id = $1 AND s.created_at < $2 AND s.vehicle_id > $3 \
             ORDER BY s.vehicle_id LIMIT $4"
        ))
        .bind(webhook_id)
        .bind(subscribed_before)
        .bind(after_vehicle.unwrap_or(""))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let vehicles = rows
            .iter()
            .map(|row| vehicle_at(row, 0))
            .collect::<StoreResult<Vec<_>>>()?;
        self.with_signals(vehicles).await
    }

    async fn schedule_progress(
        &self,
        step: &ScheduleProgress,
        deliveries: &[NewDelivery],
    ) -> StoreResult<bool> {
        self.progress_schedule(step, deliveries).await
    }

    async fn set_subscription_due(
        &self,
        webhook_id: &str,
        vehicle_id: &str,
        due: Option<Millis>,
    ) -> StoreResult<()> {
        sqlx::query(
            "UPDATE subscriptions SET next_due_at = $1 WHERE webhook_id = $2 AND vehicle_id = $3",
        )
        .bind(due)
        .bind(webhook_id)
        .bind(vehicle_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn pull_dynamic_due(&self, vehicle_id: &str, at_latest: Millis) -> StoreResult<u64> {
        let moved = sqlx::query(
            "UPDATE subscriptions SET next_due_at = $1 \
             WHERE vehicle_id = $2 AND next_due_at IS NOT NULL AND next_due_at > $1",
        )
        .bind(at_latest)
        .bind(vehicle_id)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(moved)
    }

    async fn due_dynamic(&self, now: Millis, limit: i64) -> StoreResult<Vec<DynamicDue>> {
        self.claim_dynamic(now, limit).await
    }

    async fn dynamic_progress(
        &self,
        advances: &[DynamicAdvance],
        deliveries: &[NewDelivery],
    ) -> StoreResult<bool> {
        self.progress_dynamic(advances, deliveries).await
    }

    async fn next_trigger_at(&self) -> StoreResult<Option<Millis>> {
        let next: Option<i64> = sqlx::query_scalar(
            "SELECT LEAST((SELECT MIN(boundary_at) FROM schedules), \
             (SELECT MIN(next_due_at) FROM subscriptions WHERE next_due_at IS NOT NULL))",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(next)
    }

    fn multi_node(&self) -> bool {
        true
    }

    async fn lead(&self, role: &str, lease_ms: Millis) -> StoreResult<bool> {
        self.take_singleton(role, lease_ms).await
    }
}

#[cfg(test)]
mod tests;
