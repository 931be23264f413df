//! The dispatcher's round on SQLite, run on the calling thread.
//!
//! A round records the completions of the last attempts and claims the next due deliveries in
//! one transaction. Through sqlx it was a script sent to the connection's own thread, and the
//! round waited twice: for that thread to be scheduled, and then for the runtime to poll the
//! reply while hundreds of sends were queued. In `bench throughput` a drain round of about 85
//! deliveries spent 2.0 ms in the store, about three times SQLite's own work on it, while the
//! slots waited. This module runs the same statements through a connection of its own
//! (rusqlite), on the thread of the task that asks, under the store's write mutex, so it is
//! still the one writer: the statements bind the completions' strings without copying them
//! and the claim's rows are read in place. In 24 interleaved pairs of quick runs the drain went
//! from 0.40 to 0.53 of raw loopback and from 54 to 46 µs of CPU per delivery, and end to end
//! was level. The round blocks its runtime worker for the millisecond or so it takes; the
//! other worker steals the queued sends meanwhile.
//!
//! The statements' rows are padded to a power of two with rows of NULLs, which match no key,
//! so each statement has one text per padded size and stays prepared.

use std::collections::{HashMap, HashSet};

use rusqlite::types::{ToSqlOutput, Value, ValueRef};
use rusqlite::{Connection, Row, TransactionBehavior};

use super::ROWS_PER_INSERT;
use crate::model::{Attempt, Completion, Delivery, DeliveryPurpose, DeliveryStatus, Outcome};
use crate::store::codec::{distinct_runs, from_json, parse_enum};
use crate::store::memory_leases::Due;
use crate::store::ClaimRequest;

/// Prepared statements kept: a few padded sizes of three statements, and two claims.
const STATEMENT_CACHE: usize = 64;

/// Column of the first delivery column in a claim's row read whole (after `seq`,
/// `webhook seq`, `attempt_count` and `whole`).
const WHOLE_AT: usize = 4;

/// What a round read: the due deliveries in due order, and those of them read whole.
#[derive(Default)]
pub(crate) struct RoundRows {
    pub due: Vec<Due>,
    pub whole: HashMap<i64, Delivery>,
}

/// Opens the round's connection to the database at `path`, with the settings of the store's
/// write connection (see `SqliteStore::open_with`): it commits as that one does, so it may be
/// the commit that starts the log over and cuts its file back.
pub(crate) fn connect(
    path: &std::path::Path,
    busy_timeout_ms: u128,
    wal_size_limit: i64,
) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.execute_batch(&format!(
        "PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; PRAGMA temp_store = MEMORY; \
         PRAGMA cache_size = -8192; PRAGMA busy_timeout = {busy_timeout_ms}; \
         PRAGMA wal_autocheckpoint = 0; PRAGMA journal_size_limit = {wal_size_limit};"
    ))?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(conn)
}

/// Records `completions` and, with a `claim`, reads what it may take, in one transaction:
/// the due deliveries not in `leased` (JSON seqs), in due order; with `whole_below`, the rows
/// that cannot be in memory (seq below it, or attempted) come whole (see
/// `SqliteStore::complete_then_claim`). Nothing stays when it fails.
pub(crate) fn run(
    conn: &mut Connection,
    completions: &[Completion],
    claim: Option<&ClaimRequest<'_>>,
    leased: &str,
    skip: &str,
    whole_below: Option<i64>,
) -> rusqlite::Result<RoundRows> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    record(&tx, completions)?;
    let rows = match claim {
        Some(claim) => select_due(&tx, claim, leased, skip, whole_below)?,
        None => RoundRows::default(),
    };
    tx.commit()?;
    Ok(rows)
}

/// The attempts, the outcomes and the webhooks they disable.
fn record(conn: &Connection, completions: &[Completion]) -> rusqlite::Result<()> {
    for run in distinct_runs(completions, ROWS_PER_INSERT) {
        let attempts: Vec<(&str, &Attempt)> = run
            .iter()
            .filter_map(|c| c.attempt.as_ref().map(|a| (c.delivery_id.as_str(), a)))
            .collect();
        for chunk in attempts.chunks(ROWS_PER_INSERT) {
            let mut params = Params::new(chunk.len(), ATTEMPT_WIDTH);
            for (delivery_id, a) in chunk {
                params.row([
                    text(delivery_id),
                    int(a.number),
                    text(&a.wire_delivery_id),
                    int(a.started_at),
                    opt_int(a.status_code),
                    int(a.duration_ms),
                    opt_text(a.error.as_deref()),
                    opt_text(a.response_body.as_deref()),
                ]);
            }
            params.execute(conn, &attempts_insert_sql(chunk.len()))?;
        }
        for chunk in run.chunks(ROWS_PER_INSERT) {
            let mut params = Params::new(chunk.len(), OUTCOME_WIDTH);
            for c in chunk {
                let (status, next_attempt_at, retry) = match c.outcome {
                    Outcome::Succeeded => (DeliveryStatus::Succeeded, None, false),
                    Outcome::RetryAt(at) => (DeliveryStatus::Pending, Some(at), true),
                    Outcome::Failed => (DeliveryStatus::Failed, None, false),
                };
                params.row([
                    text(&c.delivery_id),
                    int(i64::from(c.attempt.is_some())),
                    int(c.at),
                    int(i64::from(retry)),
                    text(status.as_str()),
                    opt_int(next_attempt_at),
                    opt_text(c.last_error.as_deref()),
                ]);
            }
            params.execute(conn, &outcomes_update_sql(chunk.len()))?;
        }
    }
    // The first disabling completion of a webhook in the batch wins; later ones would find
    // it disabled already.
    let mut disabled: HashSet<&str> = HashSet::new();
    let disables: Vec<(&str, &str, i64)> = completions
        .iter()
        .filter_map(|c| {
            c.disable_webhook
                .as_ref()
                .map(|(w, r)| (w.as_str(), r.as_str(), c.at))
        })
        .filter(|(webhook, _, _)| disabled.insert(webhook))
        .collect();
    for chunk in disables.chunks(ROWS_PER_INSERT) {
        let mut params = Params::new(chunk.len(), DISABLE_WIDTH);
        for (webhook_id, reason, at) in chunk {
            params.row([text(webhook_id), text(reason), int(*at)]);
        }
        params.execute(conn, &disables_update_sql(chunk.len()))?;
    }
    Ok(())
}

/// Reads the claim's due deliveries (see [`select_due_sql`]).
fn select_due(
    conn: &Connection,
    claim: &ClaimRequest<'_>,
    leased: &str,
    skip: &str,
    whole_below: Option<i64>,
) -> rusqlite::Result<RoundRows> {
    let mut statement = conn.prepare_cached(&select_due_sql(whole_below.is_some()))?;
    let params = [
        int(whole_below.unwrap_or(0)),
        int(claim.now),
        text(leased),
        text(skip),
        int(claim.limit),
    ];
    let mut rows = statement.query(rusqlite::params_from_iter(params.iter()))?;
    let mut read = RoundRows::default();
    while let Some(row) = rows.next()? {
        let seq: i64 = row.get(0)?;
        read.due.push(Due {
            seq,
            webhook: row.get(1)?,
            attempt_count: row.get(2)?,
        });
        if whole_below.is_some() && row.get::<_, bool>(3)? {
            // A row that cannot be decoded is read again after the round, as one in memory
            // would be.
            match whole_delivery(row) {
                Ok(delivery) => {
                    read.whole.insert(seq, delivery);
                }
                Err(err) => tracing::warn!(%err, "cannot decode a claimed row"),
            }
        }
    }
    Ok(read)
}

/// Decodes the delivery columns of a claim's row read whole, from [`WHOLE_AT`].
fn whole_delivery(row: &Row<'_>) -> Result<Delivery, String> {
    let get_err = |err: rusqlite::Error| err.to_string();
    let at = WHOLE_AT;
    let purpose: String = row.get(at + 4).map_err(get_err)?;
    let vehicle_ids: String = row.get(at + 8).map_err(get_err)?;
    let status: String = row.get(at + 9).map_err(get_err)?;
    Ok(Delivery {
        id: row.get(at).map_err(get_err)?,
        app_id: row.get(at + 1).map_err(get_err)?,
        webhook_id: row.get(at + 2).map_err(get_err)?,
        event_id: row.get(at + 3).map_err(get_err)?,
        purpose: parse_enum(&purpose, DeliveryPurpose::parse, "delivery purpose")
            .map_err(|e| e.to_string())?,
        target_uri: row.get(at + 5).map_err(get_err)?,
        body: row.get(at + 6).map_err(get_err)?,
        event_type: row.get(at + 7).map_err(get_err)?,
        vehicle_ids: from_json(&vehicle_ids, "delivery vehicle ids").map_err(|e| e.to_string())?,
        status: parse_enum(&status, DeliveryStatus::parse, "delivery status")
            .map_err(|e| e.to_string())?,
        attempt_count: row.get(at + 10).map_err(get_err)?,
        next_attempt_at: row.get(at + 11).map_err(get_err)?,
        last_error: row.get(at + 12).map_err(get_err)?,
        created_at: row.get(at + 13).map_err(get_err)?,
        updated_at: row.get(at + 14).map_err(get_err)?,
    })
}

const ATTEMPT_WIDTH: usize = 8;
const OUTCOME_WIDTH: usize = 7;
const DISABLE_WIDTH: usize = 3;

/// `VALUES` of `rows` rows of `width` parameters, padded to the next power of two.
fn padded_values(rows: usize, width: usize) -> String {
    let row = format!("({})", vec!["?"; width].join(", "));
    vec![row; rows.next_power_of_two()].join(", ")
}

/// Inserts the attempts of `rows` completions. The number is the caller's unless it is taken
/// (a manual retry racing the dispatcher on one delivery): then the next free one, so no
/// attempt is lost.
pub(crate) fn attempts_insert_sql(rows: usize) -> String {
    format!(
        "INSERT INTO attempts (delivery_id, number, wire_delivery_id, started_at, status_code, \
         duration_ms, error, response_body) \
         SELECT a.column1, \
         max(a.column2, (SELECT COALESCE(MAX(number), 0) + 1 FROM attempts WHERE delivery_id = a.column1)), \
         a.column3, a.column4, a.column5, a.column6, a.column7, a.column8 \
         FROM (VALUES {}) AS a WHERE a.column1 IS NOT NULL",
        padded_values(rows, ATTEMPT_WIDTH)
    )
}

/// Records the outcomes of `rows` completions. A retry never revives a delivery that finished
/// meanwhile (its webhook was deleted while the attempt was in flight): it would sit in the
/// outbox with nowhere to go.
pub(crate) fn outcomes_update_sql(rows: usize) -> String {
    format!(
        "WITH c (c_id, c_attempted, c_at, c_retry, c_status, c_next, c_error) AS (VALUES {}) \
         UPDATE deliveries SET \
         attempt_count = attempt_count + c.c_attempted, updated_at = c.c_at, \
         status = CASE WHEN c.c_retry AND status <> 'pending' THEN status ELSE c.c_status END, \
         next_attempt_at = CASE WHEN c.c_retry AND status <> 'pending' THEN NULL ELSE c.c_next END, \
         last_error = CASE WHEN c.c_retry AND status <> 'pending' THEN last_error ELSE c.c_error END \
         FROM c WHERE deliveries.id = c.c_id",
        padded_values(rows, OUTCOME_WIDTH)
    )
}

/// Disables `rows` webhooks. Only the first reason sticks: a webhook already disabled (by
/// hand or by an earlier batch) keeps the reason it has.
fn disables_update_sql(rows: usize) -> String {
    format!(
        "WITH v (v_id, v_reason, v_at) AS (VALUES {}) \
         UPDATE webhooks SET status = 'disabled', disabled_reason = v.v_reason, \
         updated_at = v.v_at FROM v \
         WHERE webhooks.id = v.v_id AND webhooks.status IN ('enabled', 'unverified')",
        padded_values(rows, DISABLE_WIDTH)
    )
}

/// The claim: the first `?5` due deliveries at `?2` in due order whose seq is not in `?3` (a
/// JSON list: one parameter keeps one text whatever its length; the outbox index answers it
/// before any row is read) and whose webhook exists and is not in `?4`, as `(seq, webhook
/// seq, attempt_count)`. `whole` adds a flag and the delivery columns, the body only for rows
/// that cannot be in memory (seq below `?1`, or attempted): read on the connection that may
/// still hold their pages. Without it the rows stay small: the extra columns cost end to end,
/// whose claims find their payloads in memory, about a tenth of its throughput.
///
/// It runs in the round's transaction: a reader could miss the completion committed just
/// before and hand out a delivery that has just been sent. CROSS JOIN keeps the outbox's
/// index the outer loop, so rows come in due order and the LIMIT stops the scan.
pub(crate) fn select_due_sql(whole: bool) -> String {
    let columns = if whole {
        concat!(
            ", (d.seq < ?1 OR d.attempt_count > 0) AS whole, ",
            delivery_cols_before_body!(),
            ", CASE WHEN d.seq < ?1 OR d.attempt_count > 0 THEN ",
            delivery_body_col!(),
            " END, ",
            delivery_cols_after_body!()
        )
    } else {
        ""
    };
    format!(
        "SELECT d.seq, w.seq, d.attempt_count{columns} FROM deliveries d \
         CROSS JOIN webhooks w ON w.id = d.webhook_id AND w.app_id = d.app_id \
         WHERE d.status = 'pending' AND d.next_attempt_at IS NOT NULL AND d.next_attempt_at <= ?2 \
         AND d.seq NOT IN (SELECT value FROM json_each(?3)) \
         AND d.webhook_id NOT IN (SELECT value FROM json_each(?4)) \
         ORDER BY d.next_attempt_at, d.seq LIMIT ?5"
    )
}

/// The parameters of one padded multi-row statement.
struct Params<'a> {
    values: Vec<ToSqlOutput<'a>>,
    rows: usize,
    width: usize,
}

impl<'a> Params<'a> {
    fn new(rows: usize, width: usize) -> Self {
        Params {
            values: Vec::with_capacity(rows.next_power_of_two() * width),
            rows,
            width,
        }
    }

    fn row<const N: usize>(&mut self, row: [ToSqlOutput<'a>; N]) {
        self.values.extend(row);
    }

    /// Pads to the statement's size with NULL rows and runs it.
    fn execute(mut self, conn: &Connection, sql: &str) -> rusqlite::Result<usize> {
        for _ in self.rows..self.rows.next_power_of_two() {
            for _ in 0..self.width {
                self.values.push(ToSqlOutput::Owned(Value::Null));
            }
        }
        conn.prepare_cached(sql)?
            .execute(rusqlite::params_from_iter(self.values.iter()))
    }
}

fn text(value: &str) -> ToSqlOutput<'_> {
    ToSqlOutput::Borrowed(ValueRef::Text(value.as_bytes()))
}

fn opt_text(value: Option<&str>) -> ToSqlOutput<'_> {
    value.map_or(ToSqlOutput::Owned(Value::Null), text)
}

fn int(value: i64) -> ToSqlOutput<'static> {
    ToSqlOutput::Owned(Value::Integer(value))
}

fn opt_int(value: Option<i64>) -> ToSqlOutput<'static> {
    value.map_or(ToSqlOutput::Owned(Value::Null), int)
}
