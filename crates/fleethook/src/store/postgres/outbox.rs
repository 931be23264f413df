//! The outbox on Postgres: batch inserts, claims under leases with `FOR UPDATE SKIP LOCKED`,
//! batched completions. Every batch is one statement per table, its rows bound as arrays and
//! expanded by `UNNEST`.

use std::collections::HashSet;

use sqlx::PgConnection;

use super::rows::{claimed_cols, claimed_from_row};
use super::{PgStore, WEBHOOK_DELETED};
use crate::clock::{real_now_ms, Millis};
use crate::model::*;
use crate::store::codec::{conflict, distinct_runs, to_json};
use crate::store::StoreResult;

/// Completions per run of statements at most: arrays have no parameter limit, but one run is
/// one transaction's worth of row locks.
const RUN: usize = 5_000;

/// Inserts payloads into the outbox inside the caller's transaction, so a trigger's payloads
/// commit together with the state change that fired them.
pub(super) async fn insert_deliveries(
    tx: &mut PgConnection,
    deliveries: &[NewDelivery],
) -> StoreResult<()> {
    if deliveries.is_empty() {
        return Ok(());
    }
    // Holding the webhooks (FOR KEY SHARE) until commit makes a concurrent delete_webhook
    // wait and then fail these rows with the others; a webhook already gone fails them now: a
    // payload it could never be claimed for must not count in the outbox's depth or due time.
    let mut webhook_ids: Vec<&str> = deliveries.iter().map(|d| d.webhook_id.as_str()).collect();
    webhook_ids.sort_unstable();
    webhook_ids.dedup();
    let live: HashSet<String> =
        sqlx::query_scalar("SELECT id FROM webhooks WHERE id = ANY($1) ORDER BY id FOR KEY SHARE")
            .bind(&webhook_ids)
            .fetch_all(&mut *tx)
            .await?
            .into_iter()
            .collect();

    let n = deliveries.len();
    let mut cols = DeliveryColumns::with_capacity(n);
    for d in deliveries {
        let alive = live.contains(&d.webhook_id);
        cols.id.push(d.id.as_str());
        cols.app_id.push(d.app_id.as_str());
        cols.webhook_id.push(d.webhook_id.as_str());
        cols.event_id.push(d.event_id.as_str());
        cols.purpose.push(d.purpose.as_str());
        cols.target_uri.push(d.target_uri.as_str());
        cols.body.push(d.body.as_str());
        cols.event_type.push(d.event_type.as_str());
        cols.vehicle_ids.push(to_json(&d.vehicle_ids)?);
        cols.status.push(if alive { "pending" } else { "failed" });
        cols.next_attempt_at
            .push(if alive { d.next_attempt_at } else { None });
        cols.last_error.push((!alive).then_some(WEBHOOK_DELETED));
        cols.created_at.push(d.created_at);
    }
    // Ragged per-row id lists cannot travel as one 2-D array; each row's list goes as JSON.
    sqlx::query(
        "INSERT INTO deliveries (id, app_id, webhook_id, event_id, purpose, target_uri, body, \
         event_type, vehicle_ids, status, next_attempt_at, last_error, created_at, updated_at) \
         SELECT u.id, u.app_id, u.webhook_id, u.event_id, u.purpose, u.target_uri, u.body, \
         u.event_type, ARRAY(SELECT json_array_elements_text(u.vehicle_ids::json)), u.status, \
         u.next_attempt_at, u.last_error, u.created_at, u.created_at \
         FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], \
         $7::text[], $8::text[], $9::text[], $10::text[], $11::bigint[], $12::text[], \
         $13::bigint[]) WITH ORDINALITY AS u(id, app_id, webhook_id, event_id, purpose, \
         target_uri, body, event_type, vehicle_ids, status, next_attempt_at, last_error, \
         created_at, ord) ORDER BY u.ord",
    )
    .bind(&cols.id)
    .bind(&cols.app_id)
    .bind(&cols.webhook_id)
    .bind(&cols.event_id)
    .bind(&cols.purpose)
    .bind(&cols.target_uri)
    .bind(&cols.body)
    .bind(&cols.event_type)
    .bind(&cols.vehicle_ids)
    .bind(&cols.status)
    .bind(&cols.next_attempt_at)
    .bind(&cols.last_error)
    .bind(&cols.created_at)
    .execute(&mut *tx)
    .await
    .map_err(conflict("delivery id already in use"))?;

    let (link_delivery, link_vehicle): (Vec<&str>, Vec<&str>) = deliveries
        .iter()
        .flat_map(|d| {
            d.vehicle_ids
                .iter()
                .map(move |v| (d.id.as_str(), v.as_str()))
        })
        .unzip();
    if !link_delivery.is_empty() {
        // A payload may name a vehicle twice; the index needs it once.
        sqlx::query(
            "INSERT INTO delivery_vehicles (delivery_id, vehicle_id) \
             SELECT * FROM UNNEST($1::text[], $2::text[]) ON CONFLICT DO NOTHING",
        )
        .bind(&link_delivery)
        .bind(&link_vehicle)
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}

/// The columns of a batch of deliveries, one array each.
struct DeliveryColumns<'a> {
    id: Vec<&'a str>,
    app_id: Vec<&'a str>,
    webhook_id: Vec<&'a str>,
    event_id: Vec<&'a str>,
    purpose: Vec<&'a str>,
    target_uri: Vec<&'a str>,
    body: Vec<&'a str>,
    event_type: Vec<&'a str>,
    vehicle_ids: Vec<String>,
    status: Vec<&'a str>,
    next_attempt_at: Vec<Option<Millis>>,
    last_error: Vec<Option<&'a str>>,
    created_at: Vec<Millis>,
}

impl DeliveryColumns<'_> {
    fn with_capacity(n: usize) -> Self {
        DeliveryColumns {
            id: Vec::with_capacity(n),
            app_id: Vec::with_capacity(n),
            webhook_id: Vec::with_capacity(n),
            event_id: Vec::with_capacity(n),
            purpose: Vec::with_capacity(n),
            target_uri: Vec::with_capacity(n),
            body: Vec::with_capacity(n),
            event_type: Vec::with_capacity(n),
            vehicle_ids: Vec::with_capacity(n),
            status: Vec::with_capacity(n),
            next_attempt_at: Vec::with_capacity(n),
            last_error: Vec::with_capacity(n),
            created_at: Vec::with_capacity(n),
        }
    }
}

impl PgStore {
    /// `Store::claim_due`: one statement picks the due, unleased rows nobody else is picking
    /// right now (SKIP LOCKED), keeps each webhook's first `per_webhook` of them, leases those
    /// to this node and returns them joined with what the dispatcher needs.
    pub(super) async fn claim_due_rows(
        &self,
        now: Millis,
        lease_now: Millis,
        lease_until: Millis,
        limit: i64,
        per_webhook: i64,
        skip_webhooks: &[String],
    ) -> StoreResult<Vec<ClaimedDelivery>> {
        if limit <= 0 || per_webhook <= 0 {
            return Ok(Vec::new());
        }
        // Row locks cannot be taken beside a window function, so the candidates are locked
        // first and numbered per webhook after; the ones not picked are unlocked when the
        // statement ends.
        let rows = sqlx::query(&format!(
            "WITH candidates AS ( \
               SELECT d.seq, d.webhook_id, d.next_attempt_at FROM deliveries d \
               JOIN webhooks w ON w.id = d.webhook_id AND w.app_id = d.app_id \
               WHERE d.status = 'pending' AND d.next_attempt_at <= $1 \
               AND (d.lease_until IS NULL OR d.lease_until <= $2) \
               AND NOT (d.webhook_id = ANY($3)) \
               ORDER BY d.next_attempt_at, d.seq LIMIT $4 \
               FOR UPDATE OF d SKIP LOCKED), \
             picked AS ( \
               SELECT seq FROM (SELECT seq, ROW_NUMBER() OVER \
                 (PARTITION BY webhook_id ORDER BY next_attempt_at, seq) AS nth FROM candidates) c \
               WHERE nth <= $7), \
             leased AS ( \
               UPDATE deliveries d SET lease_owner = $5, lease_until = $6 \
               FROM picked WHERE d.seq = picked.seq RETURNING d.*) \
             SELECT {} FROM leased d \
             JOIN webhooks w ON w.id = d.webhook_id JOIN apps a ON a.id = d.app_id \
             ORDER BY d.next_attempt_at, d.seq",
            claimed_cols()
        ))
        .bind(now)
        .bind(lease_now)
        .bind(skip_webhooks)
        .bind(limit)
        .bind(&self.node)
        .bind(lease_until)
        .bind(per_webhook)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(claimed_from_row).collect()
    }

    /// `Store::claim_one`: like a claim, by id and whatever the due time; a row under a live
    /// lease, or being claimed by another node this instant, is busy.
    pub(super) async fn claim_one_row(
        &self,
        app_id: &str,
        delivery_id: &str,
        lease_until: Millis,
    ) -> StoreResult<Option<ClaimedDelivery>> {
        let row = sqlx::query(&format!(
            "WITH picked AS ( \
               SELECT d.seq FROM deliveries d \
               JOIN webhooks w ON w.id = d.webhook_id AND w.app_id = d.app_id \
               WHERE d.id = $1 AND d.app_id = $2 \
               AND (d.lease_until IS NULL OR d.lease_until <= $3) \
               FOR UPDATE OF d SKIP LOCKED), \
             leased AS ( \
               UPDATE deliveries d SET lease_owner = $4, lease_until = $5 \
               FROM picked WHERE d.seq = picked.seq RETURNING d.*) \
             SELECT {} FROM leased d \
             JOIN webhooks w ON w.id = d.webhook_id JOIN apps a ON a.id = d.app_id",
            claimed_cols()
        ))
        .bind(delivery_id)
        .bind(app_id)
        .bind(real_now_ms())
        .bind(&self.node)
        .bind(lease_until)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(claimed_from_row).transpose()
    }

    /// `Store::complete_many`: attempts, outcomes and disables in one transaction, a few
    /// statements per run of distinct deliveries.
    pub(super) async fn complete_rows(&self, completions: &[Completion]) -> StoreResult<()> {
        if completions.is_empty() {
            return Ok(());
        }
        // The first disabling completion of a webhook in the batch wins; later ones would find
        // it disabled already.
        let mut disabled: HashSet<&str> = HashSet::new();
        let (mut dis_id, mut dis_reason, mut dis_at) = (Vec::new(), Vec::new(), Vec::new());
        for c in completions {
            if let Some((webhook, reason)) = &c.disable_webhook {
                if disabled.insert(webhook) {
                    dis_id.push(webhook.as_str());
                    dis_reason.push(reason.as_str());
                    dis_at.push(c.at);
                }
            }
        }
        let lease_now = real_now_ms();
        let mut tx = self.pool.begin().await?;
        for run in distinct_runs(completions, RUN) {
            insert_attempts(&mut tx, run).await?;
            update_outcomes(&mut tx, run, &self.node, lease_now).await?;
        }
        if !dis_id.is_empty() {
            // Only the first reason sticks: a webhook already disabled (by hand or by an
            // earlier batch) keeps the reason it has.
            sqlx::query(
                "UPDATE webhooks w SET status = 'disabled', disabled_reason = v.reason, \
                 updated_at = v.at \
                 FROM UNNEST($1::text[], $2::text[], $3::bigint[]) AS v(id, reason, at) \
                 WHERE w.id = v.id AND w.status IN ('enabled', 'unverified')",
            )
            .bind(&dis_id)
            .bind(&dis_reason)
            .bind(&dis_at)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// `Store::release_all_leases` on a shared database: only this node's leases, on the
    /// outbox and on trigger rows; returns the deliveries released.
    pub(super) async fn release_own_leases(&self) -> StoreResult<u64> {
        let mut tx = self.pool.begin().await?;
        let released = sqlx::query(
            "UPDATE deliveries SET lease_owner = NULL, lease_until = NULL \
             WHERE status = 'pending' AND lease_owner = $1",
        )
        .bind(&self.node)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        for table in ["schedules", "subscriptions"] {
            sqlx::query(&format!(
                "UPDATE {table} SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = $1"
            ))
            .bind(&self.node)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(released)
    }
}

/// Records the attempts of a run of distinct deliveries.
async fn insert_attempts(tx: &mut PgConnection, run: &[Completion]) -> StoreResult<()> {
    let attempts: Vec<(&str, &Attempt)> = run
        .iter()
        .filter_map(|c| c.attempt.as_ref().map(|a| (c.delivery_id.as_str(), a)))
        .collect();
    if attempts.is_empty() {
        return Ok(());
    }
    let delivery: Vec<&str> = attempts.iter().map(|(d, _)| *d).collect();
    let number: Vec<i64> = attempts.iter().map(|(_, a)| a.number).collect();
    let wire: Vec<&str> = attempts
        .iter()
        .map(|(_, a)| a.wire_delivery_id.as_str())
        .collect();
    let started: Vec<Millis> = attempts.iter().map(|(_, a)| a.started_at).collect();
    let status: Vec<Option<i64>> = attempts.iter().map(|(_, a)| a.status_code).collect();
    let duration: Vec<i64> = attempts.iter().map(|(_, a)| a.duration_ms).collect();
    let error: Vec<Option<&str>> = attempts.iter().map(|(_, a)| a.error.as_deref()).collect();
    let response: Vec<Option<&str>> = attempts
        .iter()
        .map(|(_, a)| a.response_body.as_deref())
        .collect();
    // The number is the caller's unless it is taken (a manual retry racing the dispatcher on
    // one delivery): then the next free one, so no attempt is lost.
    sqlx::query(
        "INSERT INTO attempts (delivery_id, number, wire_delivery_id, started_at, status_code, \
         duration_ms, error, response_body) \
         SELECT u.delivery_id, GREATEST(u.number, (SELECT COALESCE(MAX(a.number), 0) + 1 \
         FROM attempts a WHERE a.delivery_id = u.delivery_id)), u.wire, u.started, u.status, \
         u.duration, u.error, u.response \
         FROM UNNEST($1::text[], $2::bigint[], $3::text[], $4::bigint[], $5::bigint[], \
         $6::bigint[], $7::text[], $8::text[]) \
         AS u(delivery_id, number, wire, started, status, duration, error, response)",
    )
    .bind(&delivery)
    .bind(&number)
    .bind(&wire)
    .bind(&started)
    .bind(&status)
    .bind(&duration)
    .bind(&error)
    .bind(&response)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Applies the outcomes of a run of distinct deliveries and ends this node's leases on them.
async fn update_outcomes(
    tx: &mut PgConnection,
    run: &[Completion],
    node: &str,
    lease_now: Millis,
) -> StoreResult<()> {
    let n = run.len();
    let (mut id, mut attempted, mut at, mut retry) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut status, mut next, mut error) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for c in run {
        let (s, next_attempt_at, is_retry) = match c.outcome {
            Outcome::Succeeded => (DeliveryStatus::Succeeded, None, false),
            Outcome::RetryAt(at) => (DeliveryStatus::Pending, Some(at), true),
            Outcome::Failed => (DeliveryStatus::Failed, None, false),
        };
        id.push(c.delivery_id.as_str());
        attempted.push(i64::from(c.attempt.is_some()));
        at.push(c.at);
        retry.push(is_retry);
        status.push(s.as_str());
        next.push(next_attempt_at);
        error.push(c.last_error.as_deref());
    }
    // A retry never revives a delivery that finished meanwhile (its webhook was deleted while
    // the attempt was in flight). A live lease of another node (which took the delivery over
    // after this node's lease ran out) stays: that node is sending it right now.
    sqlx::query(
        "UPDATE deliveries d SET \
         attempt_count = d.attempt_count + u.attempted, updated_at = u.at, \
         lease_owner = CASE WHEN d.lease_owner <> $8 AND d.lease_until > $9 \
           THEN d.lease_owner END, \
         lease_until = CASE WHEN d.lease_owner <> $8 AND d.lease_until > $9 \
           THEN d.lease_until END, \
         status = CASE WHEN u.retry AND d.status <> 'pending' THEN d.status ELSE u.status END, \
         next_attempt_at = CASE WHEN u.retry AND d.status <> 'pending' THEN NULL \
           ELSE u.next END, \
         last_error = CASE WHEN u.retry AND d.status <> 'pending' THEN d.last_error \
           ELSE u.error END \
         FROM UNNEST($1::text[], $2::bigint[], $3::bigint[], $4::bool[], $5::text[], \
         $6::bigint[], $7::text[]) AS u(id, attempted, at, retry, status, next, error) \
         WHERE d.id = u.id",
    )
    .bind(&id)
    .bind(&attempted)
    .bind(&at)
    .bind(&retry)
    .bind(&status)
    .bind(&next)
    .bind(&error)
    .bind(node)
    .bind(lease_now)
    .execute(&mut *tx)
    .await?;
    Ok(())
}
