//! Time-based trigger rows on Postgres: due schedules and dynamic subscriptions are claimed
//! with `FOR UPDATE SKIP LOCKED` and leased to one node for a short real time, so the nodes
//! split them instead of all rendering the same pages. Correctness does not rest on the lease:
//! every progress step is still fenced on what was read (boundary and cursor, due time), so a
//! node whose lease ran out while it worked loses its step instead of delivering it twice.

use sqlx::Row;

use super::outbox::insert_deliveries;
use super::rows::{vehicle_at, webhook_at, VEHICLE_COLS, WEBHOOK_COLS, WEBHOOK_COL_COUNT};
use super::PgStore;
use crate::clock::{real_now_ms, Millis};
use crate::model::NewDelivery;
use crate::store::{DynamicAdvance, DynamicDue, ScheduleDue, ScheduleProgress, StoreResult};

impl PgStore {
    /// When the trigger leases taken now run out (real time).
    fn trigger_lease_until(&self) -> Millis {
        real_now_ms() + self.settings.trigger_lease.as_millis() as Millis
    }

    /// `Store::schedule_set`: a new cadence starts free of any lease.
    pub(super) async fn set_schedule(
        &self,
        webhook_id: &str,
        boundary_at: Option<Millis>,
    ) -> StoreResult<()> {
        match boundary_at {
            Some(at) => {
                sqlx::query(
                    "INSERT INTO schedules (webhook_id, boundary_at) \
                     SELECT id, $1 FROM webhooks WHERE id = $2 \
                     ON CONFLICT (webhook_id) DO UPDATE SET boundary_at = excluded.boundary_at, \
                     cursor = NULL, lease_owner = NULL, lease_until = NULL",
                )
                .bind(at)
                .bind(webhook_id)
                .execute(&self.pool)
                .await?;
            }
            None => {
                sqlx::query("DELETE FROM schedules WHERE webhook_id = $1")
                    .bind(webhook_id)
                    .execute(&self.pool)
                    .await?;
            }
        }
        Ok(())
    }

    /// `Store::due_schedules`: claims due schedules no live lease holds.
    pub(super) async fn claim_schedules(
        &self,
        now: Millis,
        limit: i64,
    ) -> StoreResult<Vec<ScheduleDue>> {
        let rows = sqlx::query(&format!(
            "WITH picked AS ( \
               SELECT webhook_id FROM schedules \
               WHERE boundary_at <= $1 AND (lease_until IS NULL OR lease_until <= $2) \
               ORDER BY boundary_at, webhook_id LIMIT $3 FOR UPDATE SKIP LOCKED), \
             leased AS ( \
               UPDATE schedules s SET lease_owner = $4, lease_until = $5 \
               FROM picked WHERE s.webhook_id = picked.webhook_id \
               RETURNING s.webhook_id, s.boundary_at, s.cursor) \
             SELECT {WEBHOOK_COLS}, l.boundary_at, l.cursor FROM leased l \
             JOIN webhooks w ON w.id = l.webhook_id ORDER BY l.boundary_at, l.webhook_id"
        ))
        .bind(now)
        .bind(real_now_ms())
        .bind(limit)
        .bind(&self.node)
        .bind(self.trigger_lease_until())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(ScheduleDue {
                    webhook: webhook_at(row, 0)?,
                    boundary_at: row.try_get(WEBHOOK_COL_COUNT)?,
                    cursor: row.try_get(WEBHOOK_COL_COUNT + 1)?,
                })
            })
            .collect()
    }

    /// `Store::schedule_progress`: the fenced step and its payloads in one transaction; a step
    /// with more pages to come renews this node's lease, the last one ends it.
    pub(super) async fn progress_schedule(
        &self,
        step: &ScheduleProgress,
        deliveries: &[NewDelivery],
    ) -> StoreResult<bool> {
        let fence = "webhook_id = $1 AND boundary_at = $2 AND cursor IS NOT DISTINCT FROM $3";
        let mut tx = self.pool.begin().await?;
        let sql = match (&step.new_cursor, step.next_boundary_at) {
            (Some(_), _) => format!(
                "UPDATE schedules SET boundary_at = $4, cursor = $5, lease_owner = $6, \
                 lease_until = $7 WHERE {fence}"
            ),
            (None, Some(_)) => format!(
                "UPDATE schedules SET boundary_at = $4, cursor = NULL, lease_owner = NULL, \
                 lease_until = NULL WHERE {fence}"
            ),
            (None, None) => format!("DELETE FROM schedules WHERE {fence}"),
        };
        let mut query = sqlx::query(&sql)
            .bind(&step.webhook_id)
            .bind(step.boundary_at)
            .bind(&step.expected_cursor);
        match (&step.new_cursor, step.next_boundary_at) {
            (Some(cursor), _) => {
                query = query
                    .bind(step.delivering_boundary_at)
                    .bind(cursor)
                    .bind(&self.node)
                    .bind(self.trigger_lease_until())
            }
            (None, Some(next)) => query = query.bind(next),
            (None, None) => {}
        }
        let moved = query.execute(&mut *tx).await?.rows_affected();
        if moved == 0 {
            // Dropping the transaction rolls it back: nothing of this step is written.
            return Ok(false);
        }
        insert_deliveries(&mut tx, deliveries).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// `Store::due_dynamic`: claims due dynamic subscriptions no live lease holds, then reads
    /// their vehicles' signals.
    pub(super) async fn claim_dynamic(
        &self,
        now: Millis,
        limit: i64,
    ) -> StoreResult<Vec<DynamicDue>> {
        let rows = sqlx::query(&format!(
            "WITH picked AS ( \
               SELECT webhook_id, vehicle_id FROM subscriptions \
               WHERE next_due_at <= $1 AND (lease_until IS NULL OR lease_until <= $2) \
               ORDER BY next_due_at, webhook_id, vehicle_id LIMIT $3 FOR UPDATE SKIP LOCKED), \
             leased AS ( \
               UPDATE subscriptions s SET lease_owner = $4, lease_until = $5 FROM picked \
               WHERE s.webhook_id = picked.webhook_id AND s.vehicle_id = picked.vehicle_id \
               RETURNING s.webhook_id, s.vehicle_id, s.next_due_at) \
             SELECT {WEBHOOK_COLS}, l.next_due_at, {VEHICLE_COLS} FROM leased l \
             JOIN webhooks w ON w.id = l.webhook_id JOIN vehicles v ON v.id = l.vehicle_id \
             ORDER BY l.next_due_at, l.webhook_id, l.vehicle_id"
        ))
        .bind(now)
        .bind(real_now_ms())
        .bind(limit)
        .bind(&self.node)
        .bind(self.trigger_lease_until())
        .fetch_all(&self.pool)
        .await?;
        let mut due = Vec::with_capacity(rows.len());
        let mut vehicles = Vec::with_capacity(rows.len());
        for row in &rows {
            due.push((
                webhook_at(row, 0)?,
                row.try_get::<i64, _>(WEBHOOK_COL_COUNT)?,
            ));
            vehicles.push(vehicle_at(row, WEBHOOK_COL_COUNT + 1)?);
        }
        let with_signals = self.with_signals(vehicles).await?;
        Ok(due
            .into_iter()
            .zip(with_signals)
            .map(|((webhook, due_at), v)| DynamicDue {
                webhook,
                vehicle: v.vehicle,
                signals: v.signals,
                due_at,
            })
            .collect())
    }

    /// `Store::dynamic_progress`: every advance fenced on its due time, in one statement, with
    /// the payloads; all or nothing. When a fence fails (an EV was plugged in meanwhile) this
    /// node's leases on the rows end at once, so they are due again for anyone.
    pub(super) async fn progress_dynamic(
        &self,
        advances: &[DynamicAdvance],
        deliveries: &[NewDelivery],
    ) -> StoreResult<bool> {
        let webhook: Vec<&str> = advances.iter().map(|a| a.webhook_id.as_str()).collect();
        let vehicle: Vec<&str> = advances.iter().map(|a| a.vehicle_id.as_str()).collect();
        let due: Vec<Millis> = advances.iter().map(|a| a.due_at).collect();
        let next: Vec<Millis> = advances.iter().map(|a| a.next_due_at).collect();
        let mut tx = self.pool.begin().await?;
        let moved = sqlx::query(
            "UPDATE subscriptions s SET next_due_at = u.next, lease_owner = NULL, \
             lease_until = NULL \
             FROM UNNEST($1::text[], $2::text[], $3::bigint[], $4::bigint[]) \
             AS u(webhook_id, vehicle_id, due, next) \
             WHERE s.webhook_id = u.webhook_id AND s.vehicle_id = u.vehicle_id \
             AND s.next_due_at = u.due",
        )
        .bind(&webhook)
        .bind(&vehicle)
        .bind(&due)
        .bind(&next)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if moved < advances.len() as u64 {
            tx.rollback().await?;
            sqlx::query(
                "UPDATE subscriptions s SET lease_owner = NULL, lease_until = NULL \
                 FROM UNNEST($1::text[], $2::text[]) AS u(webhook_id, vehicle_id) \
                 WHERE s.webhook_id = u.webhook_id AND s.vehicle_id = u.vehicle_id \
                 AND s.lease_owner = $3",
            )
            .bind(&webhook)
            .bind(&vehicle)
            .bind(&self.node)
            .execute(&self.pool)
            .await?;
            return Ok(false);
        }
        insert_deliveries(&mut tx, deliveries).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// `Store::lead`: takes the singleton lease when it is free or expired, renews it when it
    /// is this node's; one statement, so two nodes can never both win.
    pub(super) async fn take_singleton(&self, role: &str, lease_ms: Millis) -> StoreResult<bool> {
        let now = real_now_ms();
        let held = sqlx::query(
            "INSERT INTO singleton_leases (name, lease_owner, lease_until) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET lease_owner = excluded.lease_owner, \
             lease_until = excluded.lease_until \
             WHERE singleton_leases.lease_owner = excluded.lease_owner \
             OR singleton_leases.lease_until <= $4",
        )
        .bind(role)
        .bind(&self.node)
        .bind(now.saturating_add(lease_ms))
        .bind(now)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(held > 0)
    }
}
