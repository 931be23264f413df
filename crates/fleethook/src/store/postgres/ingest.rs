//! Vehicle data on Postgres: one ingest is one transaction that first locks the vehicle's row,
//! so two nodes ingesting for one vehicle at once are serialised and each change is reported
//! (and its payloads rendered) exactly once, from the state the other left.

use std::collections::HashMap;

use fleethook_wire::signal::SignalValue;
use serde_json::Value;
use sqlx::Row;

use super::outbox::insert_deliveries;
use super::rows::{error_from_row, signal_at};
use super::PgStore;
use crate::clock::Millis;
use crate::model::VehicleErrorState;
use crate::store::codec::{from_json, to_json};
use crate::store::diff::{changed, error_changes, latest_per_code, signal_changes, ErrorsDiff};
use crate::store::{IngestApplied, RenderChanges, StoreResult};

impl PgStore {
    /// One ingest in one transaction: signals, errors, and (with `render`) the payloads of
    /// the changes, rendered from the vehicle's signals as this transaction leaves them.
    pub(super) async fn ingest(
        &self,
        vehicle_id: &str,
        signals: &[SignalValue],
        errors: Option<&[VehicleErrorState]>,
        now: Millis,
        render: Option<RenderChanges<'_>>,
    ) -> StoreResult<(IngestApplied, usize)> {
        let latest = latest_per_code(signals);
        let mut applied = IngestApplied::default();
        let mut tx = self.pool.begin().await?;
        // NO KEY UPDATE serialises ingests of this vehicle without blocking the foreign-key
        // checks (KEY SHARE) of subscriptions and signals written meanwhile. Under READ
        // COMMITTED each later statement then sees what the previous ingest committed.
        sqlx::query("SELECT 1 FROM vehicles WHERE id = $1 FOR NO KEY UPDATE")
            .bind(vehicle_id)
            .fetch_optional(&mut *tx)
            .await?;

        if !latest.is_empty() {
            let codes: Vec<&str> = latest.iter().map(|s| s.code.as_str()).collect();
            let rows = sqlx::query(
                "SELECT code, body FROM signals WHERE vehicle_id = $1 AND code = ANY($2)",
            )
            .bind(vehicle_id)
            .bind(&codes)
            .fetch_all(&mut *tx)
            .await?;
            let mut stored: HashMap<String, Value> = HashMap::with_capacity(rows.len());
            for row in &rows {
                let body: String = row.try_get(1)?;
                stored.insert(row.try_get(0)?, from_json(&body, "signal body")?);
            }
            applied.changes = signal_changes(&latest, stored);
            // Unchanged values are written too: their retrieval times move on.
            let bodies = latest
                .iter()
                .map(|s| to_json(&s.body))
                .collect::<StoreResult<Vec<String>>>()?;
            let oem: Vec<Option<Millis>> = latest.iter().map(|s| s.oem_updated_at).collect();
            let retrieved: Vec<Millis> = latest.iter().map(|s| s.retrieved_at).collect();
            sqlx::query(
                "INSERT INTO signals (vehicle_id, code, body, oem_updated_at, retrieved_at, \
                 updated_at) \
                 SELECT $1, u.code, u.body, u.oem, u.retrieved, $6 \
                 FROM UNNEST($2::text[], $3::text[], $4::bigint[], $5::bigint[]) \
                 AS u(code, body, oem, retrieved) \
                 ON CONFLICT (vehicle_id, code) DO UPDATE SET body = excluded.body, \
                 oem_updated_at = excluded.oem_updated_at, \
                 retrieved_at = excluded.retrieved_at, updated_at = excluded.updated_at",
            )
            .bind(vehicle_id)
            .bind(&codes)
            .bind(&bodies)
            .bind(&oem)
            .bind(&retrieved)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }

        if let Some(errors) = errors {
            let rows = sqlx::query(
                "SELECT error_type, code, description, signals, raised_at FROM vehicle_errors \
                 WHERE vehicle_id = $1 ORDER BY position",
            )
            .bind(vehicle_id)
            .fetch_all(&mut *tx)
            .await?;
            let mut stored: Vec<(VehicleErrorState, Millis)> = Vec::with_capacity(rows.len());
            for row in &rows {
                stored.push((error_from_row(row)?, row.try_get(4)?));
            }
            let ErrorsDiff { active, unchanged } =
                error_changes(errors, &stored, now, &mut applied);
            if !unchanged {
                sqlx::query("DELETE FROM vehicle_errors WHERE vehicle_id = $1")
                    .bind(vehicle_id)
                    .execute(&mut *tx)
                    .await?;
                let error_type: Vec<&str> =
                    active.iter().map(|(e, _)| e.error_type.as_str()).collect();
                let code: Vec<&str> = active.iter().map(|(e, _)| e.code.as_str()).collect();
                let description: Vec<Option<&str>> = active
                    .iter()
                    .map(|(e, _)| e.description.as_deref())
                    .collect();
                // Ragged signal lists travel as JSON, one per row.
                let signal_lists = active
                    .iter()
                    .map(|(e, _)| to_json(&e.signals))
                    .collect::<StoreResult<Vec<String>>>()?;
                let raised: Vec<Millis> = active.iter().map(|(_, at)| *at).collect();
                sqlx::query(
                    "INSERT INTO vehicle_errors (vehicle_id, error_type, code, description, \
                     signals, position, raised_at) \
                     SELECT $1, u.error_type, u.code, u.description, \
                     ARRAY(SELECT json_array_elements_text(u.signals::json)), u.ord - 1, u.raised \
                     FROM UNNEST($2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[]) \
                     WITH ORDINALITY AS u(error_type, code, description, signals, raised, ord)",
                )
                .bind(vehicle_id)
                .bind(&error_type)
                .bind(&code)
                .bind(&description)
                .bind(&signal_lists)
                .bind(&raised)
                .execute(&mut *tx)
                .await?;
            }
        }

        let mut enqueued = 0;
        if let (Some(render), true) = (render, changed(&applied)) {
            let rows = sqlx::query(
                "SELECT code, body, oem_updated_at, retrieved_at FROM signals \
                 WHERE vehicle_id = $1",
            )
            .bind(vehicle_id)
            .fetch_all(&mut *tx)
            .await?;
            let mut after = HashMap::with_capacity(rows.len());
            for row in &rows {
                let value = signal_at(row, 0)?;
                after.insert(value.code.clone(), value);
            }
            let deliveries = render(&applied, &after);
            insert_deliveries(&mut tx, &deliveries).await?;
            enqueued = deliveries.len();
        }
        tx.commit().await?;
        Ok((applied, enqueued))
    }
}
