//! The embedded store: one SQLite file in WAL mode, owned by one process.
//!
//! SQLite has a single writer. Every write goes through exactly one connection behind an async
//! mutex (`sqlite_writer`), so writers queue asynchronously for it instead of spinning in
//! SQLite's busy handler (which blocks a thread) or failing with `SQLITE_BUSY`;
//! read-modify-write transactions still start with `BEGIN IMMEDIATE`, so even a foreign writer
//! (a tool opening the file by hand) can never make one fail half-way on a lock upgrade.
//! Reads use a small pool of their own: WAL lets them proceed while the writer commits.
//!
//! A second fleethook process on the same file is refused by an advisory lock on
//! `<path>.lock`, held for the store's lifetime: two dispatchers would deliver everything twice.

use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use fleethook_wire::signal::SignalValue;
use serde_json::Value;
use sqlx::query_builder::Separated;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{QueryBuilder, Row, Sqlite};

use super::checkpointer::Checkpointer;
use super::codec::{conflict, from_json, parse_enum, to_json};
use super::diff::{changed, error_changes, latest_per_code, signal_changes, ErrorsDiff};
use super::fresh_payloads::FreshPayloads;
use super::lookup_cache::LookupCache;
use super::memory_leases::{Due, MemoryLeases};
use super::sqlite_writer::{WriteTx, Writer};
use super::{
    ClaimRequest, DeliveryFilter, DynamicAdvance, DynamicDue, IngestApplied, IngestItem,
    RenderChanges, ScheduleDue, ScheduleProgress, Store, StoreError, StoreResult, VehicleSignals,
};
use crate::clock::{real_now_ms, Millis};
use crate::model::*;
use crate::stats::{self, AttemptCount};

/// How long a statement waits for a lock held by another connection before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Reader connections. Reads are short; a few connections cover the API's concurrency on a
/// machine where SQLite itself, not the connection count, is the limit.
const READERS: u32 = 4;

/// Bytes the write-ahead log file keeps once the log starts over: what the checkpointer lets
/// it grow to before a restart (frames of 4 KiB pages).
const WAL_SIZE_LIMIT: i64 = super::checkpointer::RESTART_AFTER_FRAMES * 4096;

/// Rows per multi-row INSERT (a power of two, see `push_padded_values`). SQLite allows 32766
/// bound parameters per statement; the widest row here has 14, so 512 rows stay far below the
/// limit while amortising each statement.
const ROWS_PER_INSERT: usize = 512;

/// Prepared statements kept per connection (sqlx's default is 100).
const STATEMENT_CACHE: usize = 400;

/// Rows a connection's thread may hand over before the caller takes them: a whole claim,
/// ingest group or schedule page (1,000 rows) at once.
const ROW_BUFFER: usize = 2048;

/// Applications and vehicles kept by the lookup caches, at most. Both are read by every
/// management request; the vehicles are those the ingest API is busy with.
const CACHED_APPS: usize = 1_024;
const CACHED_VEHICLES: usize = 100_000;
/// Webhooks kept for claims and ingests, at most.
const CACHED_WEBHOOKS: usize = 10_000;

/// A webhook as a claim hands it out, with its application's management token.
type CachedWebhook = (Arc<Webhook>, String);

/// The error recorded on pending deliveries whose webhook is gone.
const WEBHOOK_DELETED: &str = "webhook deleted";

/// The columns of a delivery before its body, read from `deliveries d` ([`DELIVERY_COLS`]).
macro_rules! delivery_cols_before_body {
    () => {
        "d.id, d.app_id, d.webhook_id, d.event_id, d.purpose, d.target_uri"
    };
}
/// The body of a delivery, from `delivery_bodies`.
macro_rules! delivery_body_col {
    () => {
        "(SELECT b.body FROM delivery_bodies b WHERE b.seq = d.seq)"
    };
}
/// The columns of a delivery after its body.
macro_rules! delivery_cols_after_body {
    () => {
        "d.event_type, d.vehicle_ids, d.status, d.attempt_count, d.next_attempt_at, d.last_error, \
         d.created_at, d.updated_at"
    };
}
/// The columns of a delivery, read from `deliveries d`, in the order `delivery_at` decodes.
const DELIVERY_COLS: &str = concat!(
    delivery_cols_before_body!(),
    ", ",
    delivery_body_col!(),
    ", ",
    delivery_cols_after_body!()
);
const DELIVERY_COL_COUNT: usize = 15;

// After the column macros, which it shares.
#[path = "sqlite_round.rs"]
mod round;

/// The columns of a webhook, read from `webhooks w`, in the order `webhook_at` decodes.
const WEBHOOK_COLS: &str = "w.id, w.app_id, w.name, w.kind, w.callback_uri, w.error_callback_uri, w.config, \
     w.status, w.disabled_reason, w.signing_secret, w.previous_secret, w.previous_secret_expires_at, \
     w.max_payload_bytes, w.created_at, w.updated_at";
const WEBHOOK_COL_COUNT: usize = 15;

const VEHICLE_COLS: &str =
    "id, app_id, user_id, access_token, make, model, year, vin, mode, simulated, created_at";

/// The embedded [`Store`]: a SQLite database file owned by this process.
pub struct SqliteStore {
    /// The single writing connection (see the module documentation).
    writer: Writer,
    /// Connections that only read.
    readers: SqlitePool,
    /// Copies the write-ahead log back into the file, off the writer's path.
    _checkpointer: Checkpointer,
    /// Applications by management token, and vehicles by id: what authenticating and scoping
    /// a request reads every time. Kept only while this process holds the file alone (then
    /// every change goes through this store, which invalidates them).
    apps_by_token: LookupCache<App>,
    vehicles: LookupCache<Vehicle>,
    /// Webhooks with their applications' tokens, by webhook id, as claims and ingest groups
    /// read them: a round of the dispatcher then needs no read for them, and a group of
    /// ingests reads only which webhooks its vehicles are subscribed to. Its own writes to
    /// webhooks and tokens invalidate them; kept only while this process holds the file alone.
    webhooks_by_id: LookupCache<CachedWebhook>,
    /// Payloads this store just enqueued, until their first claim (`fresh_payloads`).
    fresh: FreshPayloads,
    /// The outbox's leases (`memory_leases`).
    leases: MemoryLeases,
    /// The last claim leased rows that could not be in memory (seqs below what
    /// `fresh_payloads` keeps, or attempted ones), so the next one reads rows whole (see
    /// `push_select_due`).
    claims_read_whole: AtomicBool,
    /// The connection the dispatcher's rounds run on, on the calling thread, while they hold
    /// the write connection's turn (see `round`).
    round: std::sync::Mutex<rusqlite::Connection>,
    path: PathBuf,
    /// The advisory lock on `<path>.lock` (none for a shared open); released when the store is
    /// dropped. Declared last so that it outlives the pools during drop.
    _lock: Option<File>,
}

impl SqliteStore {
    /// Opens (creating if missing) the database at `path` for serving: locks it against other
    /// processes and runs the migrations. `StoreError::Locked` when another process holds the
    /// lock.
    pub async fn open(path: &Path) -> StoreResult<SqliteStore> {
        let lock = lock_database(path)?;
        Self::open_with(path, Some(lock)).await
    }

    /// Opens the database without taking the process lock, for a short administrative change
    /// beside a running server (`fleethook apps create`). SQLite's own locking keeps the writes
    /// safe: write transactions start with `BEGIN IMMEDIATE` and wait out the server's.
    pub async fn open_shared(path: &Path) -> StoreResult<SqliteStore> {
        Self::open_with(path, None).await
    }

    /// Opens the database named by a `sqlite://PATH` or `sqlite:PATH` URL (`sqlite:///abs/path`
    /// for an absolute path) for serving, like [`SqliteStore::open`]. Query parameters are
    /// ignored: the file is always created if missing and always opened read-write.
    pub async fn open_url(url: &str) -> StoreResult<SqliteStore> {
        Self::open(&url_path(url)?).await
    }

    /// [`SqliteStore::open_shared`] by URL.
    pub async fn open_url_shared(url: &str) -> StoreResult<SqliteStore> {
        Self::open_shared(&url_path(url)?).await
    }

    async fn open_with(path: &Path, lock: Option<File>) -> StoreResult<SqliteStore> {
        super::sqlite_memory::install();
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // In WAL mode NORMAL loses nothing when the process dies (even by kill -9); only a
            // power cut can roll back the last transactions, and FULL would cost an fsync per
            // commit on the hot paths.
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true)
            // Checkpoints run beside the writer, not inside a commit (see `checkpointer`).
            .pragma("wal_autocheckpoint", "0")
            // A log started over keeps its file at the size it reached, on disk for good; the
            // first commit after a restart cuts it back to this (see `checkpointer`).
            .pragma("journal_size_limit", WAL_SIZE_LIMIT.to_string())
            // The multi-row statements materialise their VALUES and json_each in temporary
            // b-trees; on disk each one opened, sized and unlinked a file.
            .pragma("temp_store", "MEMORY")
            // Multi-row statements come in a few sizes each (`push_padded_values`); room for
            // all of them beside the rest keeps every statement prepared once.
            .statement_cache_capacity(STATEMENT_CACHE)
            // The connection's thread hands rows over through a channel of this many, and
            // waits when it is full until the caller's task is polled again: with sqlx's 50, a
            // claim of 120 rows waited for a busy runtime two or three times.
            .row_buffer_size(ROW_BUFFER);
        // The writer touches the outbox's newest pages and its indexes on every batch; a cache
        // of 8 MiB (SQLite's default is 2 MiB) keeps them in memory between commits. Not more:
        // when a b-tree page splits, SQLite swaps page numbers through the one past 1 GiB, and
        // in a database smaller than that the commit then walks every page in the cache to
        // drop pages past the end. With 64 MiB that walk was a seventh of the writer's time
        // in `bench throughput`, and the drain and the fill were faster with 8 MiB.
        let writer = Writer::connect(&options.clone().pragma("cache_size", "-8192")).await?;
        sqlx::migrate!("./migrations/sqlite")
            .run(&mut *writer.acquire().await?)
            .await?;
        // No ping before each use (sqlx's default): a SQLite connection is a file in this
        // process, and the ping was a thread round trip per statement.
        let readers = SqlitePoolOptions::new()
            .max_connections(READERS)
            .test_before_acquire(false)
            .connect_with(options)
            .await?;
        let checkpointer = Checkpointer::start(readers.clone(), BUSY_TIMEOUT);
        let exclusive = lock.is_some();
        Ok(SqliteStore {
            writer,
            readers,
            _checkpointer: checkpointer,
            apps_by_token: LookupCache::new(exclusive, CACHED_APPS),
            vehicles: LookupCache::new(exclusive, CACHED_VEHICLES),
            webhooks_by_id: LookupCache::new(exclusive, CACHED_WEBHOOKS),
            fresh: FreshPayloads::new(exclusive),
            leases: MemoryLeases::new(),
            claims_read_whole: AtomicBool::new(true),
            round: std::sync::Mutex::new(round::connect(
                path,
                BUSY_TIMEOUT.as_millis(),
                WAL_SIZE_LIMIT,
            )?),
            path: path.to_path_buf(),
            _lock: lock,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Closes every connection, waiting for them to finish. The file lock is released when the
    /// store is dropped.
    pub async fn close(&self) {
        self.readers.close().await;
        self.writer.close().await;
    }

    /// Starts a write transaction that holds the write lock from its first statement, so what
    /// it reads cannot change before it writes.
    async fn write_tx(&self) -> StoreResult<WriteTx> {
        Ok(self.writer.begin().await?)
    }

    /// The deliveries a claim leased, in the outbox's order, with the webhooks they go to:
    /// those the claim read whole, those this store enqueued moments ago from memory
    /// (`fresh_payloads`), and any others read on a reader.
    async fn read_leased(&self, leased: Leased) -> StoreResult<Vec<ClaimedDelivery>> {
        let Leased { due, mut whole } = leased;
        if due.is_empty() {
            return Ok(Vec::new());
        }
        let mut deliveries: Vec<(i64, Delivery)> = Vec::with_capacity(due.len());
        let mut missing: Vec<i64> = Vec::new();
        for row in due {
            // Never attempted: the row is as it was inserted (see `fresh_payloads`). Taken
            // either way, so an entry leaves at its first claim.
            let fresh = (row.attempt_count == 0)
                .then(|| self.fresh.take(row.seq))
                .flatten();
            match whole.remove(&row.seq).or_else(|| fresh.map(as_inserted)) {
                Some(delivery) => deliveries.push((row.seq, delivery)),
                None => missing.push(row.seq),
            }
        }
        if !missing.is_empty() {
            let rows = sqlx::query(&format!(
                "SELECT {DELIVERY_COLS}, d.seq FROM deliveries d \
                 WHERE d.seq IN (SELECT value FROM json_each(?))"
            ))
            .bind(to_json(&missing)?)
            .fetch_all(&self.readers)
            .await?;
            for row in &rows {
                deliveries.push((row.try_get(DELIVERY_COL_COUNT)?, delivery_at(row, 0)?));
            }
        }
        deliveries.sort_by_key(|(seq, d)| (d.next_attempt_at, *seq));
        // Completions name deliveries by id; a claim's own completions are let back into it.
        for (seq, delivery) in &deliveries {
            self.leases.identify(*seq, &delivery.id);
        }
        // A webhook deleted meanwhile had its pending deliveries failed by the deletion; its
        // leased ones are left out here.
        let webhooks = self
            .cached_webhooks(deliveries.iter().map(|(_, d)| d.webhook_id.as_str()))
            .await?;
        let claimed: Vec<ClaimedDelivery> = deliveries
            .into_iter()
            .filter_map(|(_, delivery)| {
                let (webhook, token) = webhooks.get(&delivery.webhook_id)?;
                // A webhook id is unique across applications; the app check mirrors the join
                // every other claim makes.
                (webhook.app_id == delivery.app_id).then(|| ClaimedDelivery {
                    delivery,
                    webhook: webhook.clone(),
                    management_token: token.clone(),
                })
            })
            .collect();
        Ok(claimed)
    }

    /// The webhooks of `ids` (repeats welcome) with their applications' management tokens,
    /// each decoded once; those a recent claim or ingest group read come from `webhooks_by_id`,
    /// the others are read on a reader in one statement. A webhook that does not exist is
    /// absent.
    async fn cached_webhooks<'a>(
        &self,
        ids: impl Iterator<Item = &'a str>,
    ) -> StoreResult<HashMap<String, CachedWebhook>> {
        let mut found = HashMap::new();
        let mut missing: HashSet<&str> = HashSet::new();
        let mut since = None;
        for id in ids {
            if found.contains_key(id) || missing.contains(id) {
                continue;
            }
            match self.webhooks_by_id.get(id) {
                Ok(hit) => {
                    found.insert(id.to_string(), hit);
                }
                Err(generation) => {
                    // The earliest: a value read after it may predate any later invalidation.
                    since.get_or_insert(generation);
                    missing.insert(id);
                }
            }
        }
        let Some(since) = since else {
            return Ok(found);
        };
        let rows = sqlx::query(&format!(
            "SELECT {WEBHOOK_COLS}, a.management_token FROM webhooks w JOIN apps a ON a.id = w.app_id \
             WHERE w.id IN (SELECT value FROM json_each(?))"
        ))
        .bind(to_json(&missing)?)
        .fetch_all(&self.readers)
        .await?;
        for row in &rows {
            let webhook = webhook_at(row, 0)?;
            let token: String = row.try_get(WEBHOOK_COL_COUNT)?;
            let entry = (Arc::new(webhook), token);
            self.webhooks_by_id
                .insert(since, &entry.0.id, entry.clone());
            found.insert(entry.0.id.clone(), entry);
        }
        Ok(found)
    }

    /// Forgets the kept webhooks `stale` names, after a write changed them.
    fn forget_cached_webhooks(&self, mut stale: impl FnMut(&Webhook) -> bool) {
        self.webhooks_by_id
            .invalidate(|_, (webhook, _)| stale(webhook));
    }

    /// Records `completions` and reads what `claim` may take (unless it can take nothing), as
    /// one transaction in one turn of the write connection, run on this thread (`round`). The
    /// outbox pages both touch go to the WAL once.
    ///
    /// The completed deliveries' leases end and the claim's leases are taken before the
    /// turn ends (`memory_leases`); returns the deliveries leased, in due order. When the
    /// round fails nothing of it stays.
    async fn complete_then_claim(
        &self,
        completions: &[Completion],
        claim: Option<&ClaimRequest<'_>>,
    ) -> StoreResult<Leased> {
        let claim = claim.filter(|claim| !claim_is_empty(claim));
        if completions.is_empty() && claim.is_none() {
            return Ok(Leased::default());
        }
        // Only a claim asks what is in memory (see `push_select_due`).
        let kept_from = claim.map_or(i64::MAX, |_| self.fresh.kept_from());
        let completing: HashSet<&str> =
            completions.iter().map(|c| c.delivery_id.as_str()).collect();
        let held = self.writer.acquire().await?;
        let leased = match claim {
            Some(claim) => to_json(&self.leases.live(claim.lease_now, &completing))?,
            None => String::new(),
        };
        let skip = match claim {
            Some(claim) => to_json(claim.skip_webhooks)?,
            None => String::new(),
        };
        let whole_below = self
            .claims_read_whole
            .load(Ordering::Relaxed)
            .then_some(kept_from);
        let mut rows = {
            let mut conn = self.round.lock().unwrap_or_else(|e| e.into_inner());
            round::run(&mut conn, completions, claim, &leased, &skip, whole_below)?
        };
        let disabled: HashSet<&str> = completions
            .iter()
            .filter_map(|c| {
                c.disable_webhook
                    .as_ref()
                    .map(|(webhook, _)| webhook.as_str())
            })
            .collect();
        if !disabled.is_empty() {
            self.forget_cached_webhooks(|webhook| disabled.contains(webhook.id.as_str()));
        }
        // The transaction is committed: the completions must not be reported failed (the
        // dispatcher would record them twice).
        self.leases.release(&completing);
        let taken = match claim {
            Some(claim) => self.leases.take(
                &rows.due,
                usize::try_from(claim.limit).unwrap_or(usize::MAX),
                usize::try_from(claim.per_webhook).unwrap_or(usize::MAX),
                claim.lease_now,
                claim.lease_until,
            ),
            None => Vec::new(),
        };
        drop(held);
        if claim.is_some() && !taken.is_empty() {
            self.claims_read_whole.store(
                taken
                    .iter()
                    .any(|due| due.seq < kept_from || due.attempt_count > 0),
                Ordering::Relaxed,
            );
        }
        let whole = taken
            .iter()
            .filter_map(|due| Some((due.seq, rows.whole.remove(&due.seq)?)))
            .collect();
        Ok(Leased { due: taken, whole })
    }

    /// Commits `tx`, which inserted `deliveries` under consecutive seqs from `first_seq`, and
    /// keeps them for their claim before the write connection is let go, as `ingest` does.
    async fn commit_keeping(
        &self,
        tx: WriteTx,
        first_seq: Option<i64>,
        deliveries: &[NewDelivery],
    ) -> StoreResult<()> {
        let held = tx.commit().await?;
        if let Some(first) = first_seq {
            self.fresh.keep((first..).zip(deliveries.iter().cloned()));
        }
        drop(held);
        Ok(())
    }
}

/// The file path in a `sqlite:` URL, or a configuration error naming the URL.
fn url_path(url: &str) -> StoreResult<PathBuf> {
    path_from_url(url).ok_or_else(|| {
        StoreError::Database(sqlx::Error::Configuration(
            format!("not a SQLite database file URL (want sqlite://PATH): {url}").into(),
        ))
    })
}

/// The file path in a `sqlite:` URL; `None` for anything else, and for in-memory databases,
/// which a pool of connections cannot share.
fn path_from_url(url: &str) -> Option<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let rest = rest.split_once('?').map_or(rest, |(path, _)| path);
    if rest.is_empty() || rest == ":memory:" {
        return None;
    }
    Some(PathBuf::from(rest))
}

/// Takes the exclusive advisory lock on `<path>.lock`. The lock file is never removed: removing
/// it would let a third process lock a fresh file while the second still holds the old one.
fn lock_database(path: &Path) -> StoreResult<File> {
    let mut lock_path = path.as_os_str().to_owned();
    lock_path.push(".lock");
    let lock_path = PathBuf::from(lock_path);
    let io_error = |err: std::io::Error| {
        StoreError::Database(sqlx::Error::Io(std::io::Error::new(
            err.kind(),
            format!("cannot lock {}: {err}", lock_path.display()),
        )))
    };
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&lock_path)
        .map_err(io_error)?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(TryLockError::WouldBlock) => Err(StoreError::Locked(format!(
            "another fleethook process is already serving {} (lock {} is held); stop it or use \
             another FLEETHOOK_DATABASE_URL",
            path.display(),
            lock_path.display()
        ))),
        Err(TryLockError::Error(err)) => Err(io_error(err)),
    }
}

fn app_from_row(row: &SqliteRow) -> StoreResult<App> {
    Ok(App {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        management_token: row.try_get("management_token")?,
        created_at: row.try_get("created_at")?,
    })
}

fn vehicle_from_row(row: &SqliteRow) -> StoreResult<Vehicle> {
    let mode: String = row.try_get("mode")?;
    Ok(Vehicle {
        id: row.try_get("id")?,
        app_id: row.try_get("app_id")?,
        user_id: row.try_get("user_id")?,
        access_token: row.try_get("access_token")?,
        make: row.try_get("make")?,
        model: row.try_get("model")?,
        year: row.try_get("year")?,
        vin: row.try_get("vin")?,
        mode: parse_enum(&mode, VehicleMode::parse, "vehicle mode")?,
        simulated: row.try_get("simulated")?,
        created_at: row.try_get("created_at")?,
    })
}

/// Decodes [`WEBHOOK_COLS`] starting at column `at`.
fn webhook_at(row: &SqliteRow, at: usize) -> StoreResult<Webhook> {
    let kind: String = row.try_get(at + 3)?;
    let config: String = row.try_get(at + 6)?;
    let status: String = row.try_get(at + 7)?;
    Ok(Webhook {
        id: row.try_get(at)?,
        app_id: row.try_get(at + 1)?,
        name: row.try_get(at + 2)?,
        kind: parse_enum(&kind, WebhookKind::parse, "webhook kind")?,
        callback_uri: row.try_get(at + 4)?,
        error_callback_uri: row.try_get(at + 5)?,
        config: from_json(&config, "webhook config")?,
        status: parse_enum(&status, WebhookStatus::parse, "webhook status")?,
        disabled_reason: row.try_get(at + 8)?,
        signing_secret: row.try_get(at + 9)?,
        previous_secret: row.try_get(at + 10)?,
        previous_secret_expires_at: row.try_get(at + 11)?,
        max_payload_bytes: row.try_get(at + 12)?,
        created_at: row.try_get(at + 13)?,
        updated_at: row.try_get(at + 14)?,
    })
}

/// Decodes [`DELIVERY_COLS`] starting at column `at`.
fn delivery_at(row: &SqliteRow, at: usize) -> StoreResult<Delivery> {
    let purpose: String = row.try_get(at + 4)?;
    let vehicle_ids: String = row.try_get(at + 8)?;
    let status: String = row.try_get(at + 9)?;
    Ok(Delivery {
        id: row.try_get(at)?,
        app_id: row.try_get(at + 1)?,
        webhook_id: row.try_get(at + 2)?,
        event_id: row.try_get(at + 3)?,
        purpose: parse_enum(&purpose, DeliveryPurpose::parse, "delivery purpose")?,
        target_uri: row.try_get(at + 5)?,
        body: row.try_get(at + 6)?,
        event_type: row.try_get(at + 7)?,
        vehicle_ids: from_json(&vehicle_ids, "delivery vehicle ids")?,
        status: parse_enum(&status, DeliveryStatus::parse, "delivery status")?,
        attempt_count: row.try_get(at + 10)?,
        next_attempt_at: row.try_get(at + 11)?,
        last_error: row.try_get(at + 12)?,
        created_at: row.try_get(at + 13)?,
        updated_at: row.try_get(at + 14)?,
    })
}

/// Decodes a row of [`claim_select`].
fn claimed_from_row(row: &SqliteRow) -> StoreResult<ClaimedDelivery> {
    Ok(ClaimedDelivery {
        delivery: delivery_at(row, 0)?,
        webhook: Arc::new(webhook_at(row, DELIVERY_COL_COUNT)?),
        management_token: row.try_get(DELIVERY_COL_COUNT + WEBHOOK_COL_COUNT)?,
    })
}

fn error_from_row(row: &SqliteRow) -> StoreResult<VehicleErrorState> {
    let signals: String = row.try_get("signals")?;
    Ok(VehicleErrorState {
        error_type: row.try_get("error_type")?,
        code: row.try_get("code")?,
        description: row.try_get("description")?,
        signals: from_json(&signals, "error signals")?,
    })
}

/// Inserts payloads into the outbox inside `tx`, so a trigger's payloads commit together with
/// the state change that fired them. Returns the seq of the first (the others follow it), for
/// [`SqliteStore::commit_keeping`], which keeps them before the write connection is let go.
async fn insert_deliveries(
    tx: &mut WriteTx,
    deliveries: &[NewDelivery],
) -> StoreResult<Option<i64>> {
    if deliveries.is_empty() {
        return Ok(None);
    }
    let rows = DeliveryRows::number(tx, deliveries).await?;
    let mut script = QueryBuilder::new("");
    rows.push_inserts(&mut script);
    script
        .build()
        .execute(&mut **tx)
        .await
        .map_err(conflict("delivery id already in use"))?;
    Ok(rows.first_seq())
}

/// New deliveries as their insert statements bind them, numbered.
struct DeliveryRows<'a> {
    /// Each delivery with its `seq` and its vehicle ids as JSON.
    rows: Vec<(i64, &'a NewDelivery, String)>,
    /// (delivery id, vehicle id) for `delivery_vehicles`.
    links: Vec<(&'a str, &'a str)>,
    /// The delivery ids as JSON.
    ids: String,
}

impl<'a> DeliveryRows<'a> {
    /// Numbers `deliveries` after the last row, under the write lock of `tx`, so each body can
    /// name its row (`delivery_bodies`, see migration 0004) without reading numbers back.
    async fn number(tx: &mut WriteTx, deliveries: &'a [NewDelivery]) -> StoreResult<Self> {
        let first_seq: i64 = if deliveries.is_empty() {
            0
        } else {
            sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) + 1 FROM deliveries")
                .fetch_one(&mut **tx)
                .await?
        };
        let rows = (first_seq..)
            .zip(deliveries)
            .map(|(seq, d)| Ok((seq, d, to_json(&d.vehicle_ids)?)))
            .collect::<StoreResult<Vec<_>>>()?;
        let links = deliveries
            .iter()
            .flat_map(|d| {
                d.vehicle_ids
                    .iter()
                    .map(move |v| (d.id.as_str(), v.as_str()))
            })
            .collect();
        let ids = to_json(&deliveries.iter().map(|d| d.id.as_str()).collect::<Vec<_>>())?;
        Ok(DeliveryRows { rows, links, ids })
    }

    /// The seq of the first row; the others follow it one by one.
    fn first_seq(&self) -> Option<i64> {
        self.rows.first().map(|(seq, _, _)| *seq)
    }

    /// Appends the statements that insert the rows, their bodies and their vehicle links,
    /// each ending in `; `; nothing when there are no rows. Their rows are padded to a power
    /// of two (`push_padded_values`), so a script of them has one of a few texts whatever the
    /// batch's size, and a caller can send them with its other writes in one round trip.
    fn push_inserts(&'a self, script: &mut QueryBuilder<'a, Sqlite>) {
        if self.rows.is_empty() {
            return;
        }
        push_padded_inserts(
            script,
            "deliveries (seq, id, app_id, webhook_id, event_id, purpose, target_uri, event_type, \
             vehicle_ids, status, attempt_count, next_attempt_at, created_at, updated_at)",
            &self.rows,
            14,
            |mut b, (seq, d, vehicles)| {
                b.push_bind(*seq)
                    .push_bind(d.id.as_str())
                    .push_bind(d.app_id.as_str())
                    .push_bind(d.webhook_id.as_str())
                    .push_bind(d.event_id.as_str())
                    .push_bind(d.purpose.as_str())
                    .push_bind(d.target_uri.as_str())
                    .push_bind(d.event_type.as_str())
                    .push_bind(vehicles.as_str())
                    .push_bind(DeliveryStatus::Pending.as_str())
                    .push_bind(0_i64)
                    .push_bind(d.next_attempt_at)
                    .push_bind(d.created_at)
                    .push_bind(d.created_at);
            },
            "",
        );
        push_padded_inserts(
            script,
            "delivery_bodies (seq, body)",
            &self.rows,
            2,
            |mut b, (seq, d, _)| {
                b.push_bind(*seq).push_bind(d.body.as_str());
            },
            "",
        );
        push_padded_inserts(
            script,
            "delivery_vehicles (delivery_id, vehicle_id)",
            &self.links,
            2,
            |mut b, (delivery, vehicle)| {
                b.push_bind(*delivery).push_bind(*vehicle);
            },
            // A payload may name a vehicle twice; the index needs it once.
            " ON CONFLICT DO NOTHING",
        );
        // A payload rendered for a webhook deleted meanwhile could never be claimed; failing
        // it now keeps it out of the outbox's depth and due time.
        script
            .push("UPDATE deliveries SET status = 'failed', last_error = ")
            .push_bind(WEBHOOK_DELETED)
            .push(", next_attempt_at = NULL WHERE id IN (SELECT value FROM json_each(")
            .push_bind(self.ids.as_str())
            .push(
                ")) AND NOT EXISTS (SELECT 1 FROM webhooks w WHERE w.id = deliveries.webhook_id); ",
            );
    }
}

/// [`VEHICLE_COLS`] read from `vehicles v`, named as `vehicle_from_row` expects.
fn prefixed_vehicle_cols() -> String {
    VEHICLE_COLS
        .split(", ")
        .map(|c| format!("v.{c} AS {c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl SqliteStore {
    /// Loads the signals of many vehicles with one query, keeping the vehicles' order.
    async fn with_signals(&self, vehicles: Vec<Vehicle>) -> StoreResult<Vec<VehicleSignals>> {
        if vehicles.is_empty() {
            return Ok(Vec::new());
        }
        let ids = to_json(&vehicles.iter().map(|v| v.id.as_str()).collect::<Vec<_>>())?;
        let rows = sqlx::query(
            "SELECT vehicle_id, code, body, oem_updated_at, retrieved_at FROM signals \
             WHERE vehicle_id IN (SELECT value FROM json_each(?))",
        )
        .bind(ids)
        .fetch_all(&self.readers)
        .await?;
        let mut by_vehicle: HashMap<String, HashMap<String, SignalValue>> = HashMap::new();
        for row in &rows {
            let vehicle_id: String = row.try_get("vehicle_id")?;
            let value = signal_from_row(row)?;
            by_vehicle
                .entry(vehicle_id)
                .or_default()
                .insert(value.code.clone(), value);
        }
        Ok(vehicles
            .into_iter()
            .map(|vehicle| VehicleSignals {
                signals: by_vehicle.remove(&vehicle.id).unwrap_or_default(),
                vehicle,
            })
            .collect())
    }
}

/// Decodes `code, body, oem_updated_at, retrieved_at`.
fn signal_from_row(row: &SqliteRow) -> StoreResult<SignalValue> {
    let body: String = row.try_get("body")?;
    Ok(SignalValue {
        code: row.try_get("code")?,
        body: from_json(&body, "signal body")?,
        oem_updated_at: row.try_get("oem_updated_at")?,
        retrieved_at: row.try_get("retrieved_at")?,
    })
}

impl SqliteStore {
    /// Ingests in one transaction (group commit when there are several): every item in order,
    /// then all their signals in one upsert and all their payloads in one insert. On a single
    /// writer each statement is a round trip to the connection's thread, so a group costs a
    /// fixed handful of statements however many ingests it holds, not two per ingest.
    async fn ingest(&self, items: &[IngestItem<'_>]) -> StoreResult<Vec<(IngestApplied, usize)>> {
        let mut tx = self.write_tx().await?;
        let mut results = Vec::with_capacity(items.len());
        let mut all = Vec::new();
        let (outcomes, writes) = ingest_in_tx(&mut tx, items).await?;
        for (applied, deliveries) in outcomes {
            results.push((applied, deliveries.len()));
            all.extend(deliveries);
        }
        // The writes and the commit go to the connection's thread in one round trip (as a
        // dispatcher round does): each statement a round trip of its own kept the write
        // connection held while the group's replies waited for a busy runtime.
        let signals = SignalRows::new(&writes)?;
        let deliveries = DeliveryRows::number(&mut tx, &all).await?;
        let mut script = QueryBuilder::new("");
        signals.push_upserts(&mut script);
        deliveries.push_inserts(&mut script);
        script.push("COMMIT");
        let held = tx
            .commit_script(script.build())
            .await
            .map_err(conflict("delivery id already in use"))?;
        // Kept before the write connection is let go, so no claim can take a payload before
        // it is kept, and no attempt by hand can change one before that (see `claim_one`).
        if let Some(first) = deliveries.first_seq() {
            drop(deliveries);
            self.fresh.keep((first..).zip(all));
        }
        drop(held);
        Ok(results)
    }

    /// One ingest alone in its transaction.
    async fn ingest_one(&self, item: IngestItem<'_>) -> StoreResult<(IngestApplied, usize)> {
        let mut results = self.ingest(std::slice::from_ref(&item)).await?;
        results
            .pop()
            .ok_or_else(|| StoreError::Corrupt("an ingest applied nothing".into()))
    }
}

/// The signals a group of ingests needs, by vehicle id then code, as the group goes.
type GroupSignals = HashMap<String, HashMap<String, SignalValue>>;

/// Applies ingests inside `tx`, in order, each seeing what the earlier ones wrote: signals
/// (diffed in memory against one read of the stored values), errors, and (with a `render`)
/// the payloads of the changes, rendered from the vehicle's signals as the ingest leaves
/// them. Returns, per item, what changed and the payloads, and every signal value to store,
/// for the caller to write in one script.
async fn ingest_in_tx<'a>(
    tx: &mut WriteTx,
    items: &'a [IngestItem<'a>],
) -> StoreResult<(Vec<(IngestApplied, Vec<NewDelivery>)>, Vec<SignalWrite<'a>>)> {
    let latest: Vec<Vec<&SignalValue>> = items.iter().map(|i| latest_per_code(i.signals)).collect();
    let mut known = read_group_signals(tx, items, &latest).await?;
    let mut writes: Vec<SignalWrite<'_>> = Vec::new();
    let mut outcomes = Vec::with_capacity(items.len());
    for (item, latest) in items.iter().zip(&latest) {
        let signals = known.entry(item.vehicle_id.to_string()).or_default();
        let mut applied = IngestApplied::default();
        let stored = latest
            .iter()
            .filter_map(|s| {
                signals
                    .get(&s.code)
                    .map(|v| (s.code.clone(), v.body.clone()))
            })
            .collect();
        applied.changes = signal_changes(latest, stored);
        // Unchanged values are written too: their retrieval times move on.
        for signal in latest {
            signals.insert(signal.code.clone(), (*signal).clone());
            writes.push((item.vehicle_id, *signal, item.now));
        }
        if let Some(errors) = item.errors {
            apply_errors(tx, item.vehicle_id, errors, item.now, &mut applied).await?;
        }
        let deliveries = match item.render {
            Some(render) if changed(&applied) => render(&applied, signals),
            _ => Vec::new(),
        };
        outcomes.push((applied, deliveries));
    }
    Ok((outcomes, writes))
}

/// A signal row to upsert: vehicle, value, platform time of the ingest.
type SignalWrite<'a> = (&'a str, &'a SignalValue, Millis);

/// Reads, in one or two statements, what the group's diffs and renders need: every signal of
/// a vehicle some item renders for (the payloads carry all of them), and only the ingested
/// codes of the others.
async fn read_group_signals(
    tx: &mut WriteTx,
    items: &[IngestItem<'_>],
    latest: &[Vec<&SignalValue>],
) -> StoreResult<GroupSignals> {
    let rendered: HashSet<&str> = items
        .iter()
        .filter(|i| i.render.is_some())
        .map(|i| i.vehicle_id)
        .collect();
    let mut keyed: HashSet<&str> = HashSet::new();
    let mut codes: HashSet<&str> = HashSet::new();
    for (item, latest) in items.iter().zip(latest) {
        if !rendered.contains(item.vehicle_id) && !latest.is_empty() {
            keyed.insert(item.vehicle_id);
            codes.extend(latest.iter().map(|s| s.code.as_str()));
        }
    }
    let mut known = GroupSignals::with_capacity(rendered.len() + keyed.len());
    const COLS: &str = "SELECT vehicle_id, code, body, oem_updated_at, retrieved_at FROM signals";
    if !rendered.is_empty() {
        let rows = sqlx::query(&format!(
            "{COLS} WHERE vehicle_id IN (SELECT value FROM json_each(?))"
        ))
        .bind(to_json(&rendered)?)
        .fetch_all(&mut **tx)
        .await?;
        add_signal_rows(&mut known, &rows)?;
    }
    if !keyed.is_empty() {
        // Every ingested code of every such vehicle: a few rows more than the pairs asked
        // for, which no diff looks at, against a join that would not use the primary key.
        let rows = sqlx::query(&format!(
            "{COLS} WHERE vehicle_id IN (SELECT value FROM json_each(?)) \
             AND code IN (SELECT value FROM json_each(?))"
        ))
        .bind(to_json(&keyed)?)
        .bind(to_json(&codes)?)
        .fetch_all(&mut **tx)
        .await?;
        add_signal_rows(&mut known, &rows)?;
    }
    Ok(known)
}

fn add_signal_rows(known: &mut GroupSignals, rows: &[SqliteRow]) -> StoreResult<()> {
    for row in rows {
        let vehicle_id: String = row.try_get("vehicle_id")?;
        let value = signal_from_row(row)?;
        known
            .entry(vehicle_id)
            .or_default()
            .insert(value.code.clone(), value);
    }
    Ok(())
}

/// Signal rows to upsert, with their bodies as JSON. A (vehicle, code) written by several
/// items of a group is written once, with the last value, as applying them one after another
/// would leave it.
struct SignalRows<'a> {
    rows: Vec<(SignalWrite<'a>, String)>,
}

impl<'a> SignalRows<'a> {
    fn new(writes: &[SignalWrite<'a>]) -> StoreResult<Self> {
        let mut last: HashMap<(&str, &str), usize> = HashMap::with_capacity(writes.len());
        let mut rows: Vec<SignalWrite<'a>> = Vec::with_capacity(writes.len());
        for &(vehicle_id, signal, now) in writes {
            match last.entry((vehicle_id, signal.code.as_str())) {
                std::collections::hash_map::Entry::Occupied(at) => {
                    rows[*at.get()] = (vehicle_id, signal, now)
                }
                std::collections::hash_map::Entry::Vacant(at) => {
                    at.insert(rows.len());
                    rows.push((vehicle_id, signal, now));
                }
            }
        }
        let rows = rows
            .into_iter()
            .map(|row| Ok((row, to_json(&row.1.body)?)))
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(SignalRows { rows })
    }

    /// Appends the upserts, each ending in `; `, padded as `DeliveryRows::push_inserts` is.
    fn push_upserts(&'a self, script: &mut QueryBuilder<'a, Sqlite>) {
        push_padded_inserts(
            script,
            "signals (vehicle_id, code, body, oem_updated_at, retrieved_at, updated_at)",
            &self.rows,
            6,
            |mut b, ((vehicle_id, signal, now), body)| {
                b.push_bind(*vehicle_id)
                    .push_bind(signal.code.as_str())
                    .push_bind(body.as_str())
                    .push_bind(signal.oem_updated_at)
                    .push_bind(signal.retrieved_at)
                    .push_bind(*now);
            },
            " ON CONFLICT (vehicle_id, code) DO UPDATE SET body = excluded.body, \
             oem_updated_at = excluded.oem_updated_at, retrieved_at = excluded.retrieved_at, \
             updated_at = excluded.updated_at",
        );
    }
}

/// Makes `errors` the vehicle's full set of active errors inside `tx`, recording what was
/// raised and resolved in `applied`.
async fn apply_errors(
    tx: &mut WriteTx,
    vehicle_id: &str,
    errors: &[VehicleErrorState],
    now: Millis,
    applied: &mut IngestApplied,
) -> StoreResult<()> {
    let rows = sqlx::query(
        "SELECT error_type, code, description, signals, raised_at FROM vehicle_errors \
         WHERE vehicle_id = ? ORDER BY position",
    )
    .bind(vehicle_id)
    .fetch_all(&mut **tx)
    .await?;
    let mut stored: Vec<(VehicleErrorState, Millis)> = Vec::with_capacity(rows.len());
    for row in &rows {
        stored.push((error_from_row(row)?, row.try_get("raised_at")?));
    }

    let ErrorsDiff { active, unchanged } = error_changes(errors, &stored, now, applied);
    if unchanged {
        return Ok(());
    }
    sqlx::query("DELETE FROM vehicle_errors WHERE vehicle_id = ?")
        .bind(vehicle_id)
        .execute(&mut **tx)
        .await?;
    let rows = active
        .iter()
        .enumerate()
        .map(|(i, (error, at))| Ok((i as i64, *error, *at, to_json(&error.signals)?)))
        .collect::<StoreResult<Vec<_>>>()?;
    for chunk in rows.chunks(ROWS_PER_INSERT) {
        let mut insert = QueryBuilder::<Sqlite>::new(
            "INSERT INTO vehicle_errors (vehicle_id, error_type, code, description, signals, \
             position, raised_at) ",
        );
        insert.push_values(chunk, |mut b, (i, error, at, signals)| {
            b.push_bind(vehicle_id)
                .push_bind(error.error_type.as_str())
                .push_bind(error.code.as_str())
                .push_bind(error.description.as_deref())
                .push_bind(signals.as_str())
                .push_bind(*i)
                .push_bind(*at);
        });
        insert.build().execute(&mut **tx).await?;
    }
    Ok(())
}

/// Appends `VALUES` with one row per item of `rows` (written by `push_row`, a bound parameter
/// per column), then rows of `width` parameters bound to NULL up to the next power of two.
/// The statement's text then depends only on the padded size, whatever the rows; the NULL
/// rows match no key, and the statements filter them out.
fn push_padded_values<'a, I: ExactSizeIterator>(
    script: &mut QueryBuilder<'a, Sqlite>,
    rows: I,
    width: usize,
    push_row: impl FnMut(Separated<'_, 'a, Sqlite, &'static str>, I::Item),
) {
    let len = rows.len();
    script.push_values(rows, push_row);
    for _ in len..len.next_power_of_two() {
        script.push(", (");
        for column in 0..width {
            if column > 0 {
                script.push(", ");
            }
            script.push_bind(None::<i64>);
        }
        script.push(")");
    }
}

/// Appends `INSERT INTO {into} SELECT * FROM (VALUES …) WHERE column1 IS NOT NULL{tail}; `
/// per [`ROWS_PER_INSERT`] rows of `rows`, each padded by [`push_padded_values`]; the filter
/// drops the padding rows, whose first column is NULL. `tail` is an upsert clause or empty.
fn push_padded_inserts<'a, T>(
    script: &mut QueryBuilder<'a, Sqlite>,
    into: &str,
    rows: &'a [T],
    width: usize,
    mut push_row: impl FnMut(Separated<'_, 'a, Sqlite, &'static str>, &'a T),
    tail: &str,
) {
    for chunk in rows.chunks(ROWS_PER_INSERT) {
        script.push(format!("INSERT INTO {into} SELECT * FROM ("));
        push_padded_values(script, chunk.iter(), width, &mut push_row);
        script.push(format!(") WHERE column1 IS NOT NULL{tail}; "));
    }
}

/// A claim that can take nothing (no room, or no webhook may get any).
fn claim_is_empty(claim: &ClaimRequest<'_>) -> bool {
    claim.limit <= 0 || claim.per_webhook <= 0
}

/// What a claim leased: the deliveries, in due order, and those of them whose rows it read
/// whole, decoded.
#[derive(Default)]
struct Leased {
    due: Vec<Due>,
    whole: HashMap<i64, Delivery>,
}

/// A payload as its row holds it from the insert until its first attempt; leased by a claim,
/// it is pending.
fn as_inserted(payload: NewDelivery) -> Delivery {
    Delivery {
        id: payload.id,
        app_id: payload.app_id,
        webhook_id: payload.webhook_id,
        event_id: payload.event_id,
        purpose: payload.purpose,
        target_uri: payload.target_uri,
        body: payload.body,
        event_type: payload.event_type,
        vehicle_ids: payload.vehicle_ids,
        status: DeliveryStatus::Pending,
        attempt_count: 0,
        next_attempt_at: payload.next_attempt_at,
        last_error: None,
        created_at: payload.created_at,
        updated_at: payload.created_at,
    }
}

/// A delivery joined with what the dispatcher needs to send it. The inner joins leave out
/// deliveries whose webhook is gone.
fn claim_select() -> String {
    format!(
        "SELECT {DELIVERY_COLS}, {WEBHOOK_COLS}, a.management_token, d.seq \
         FROM deliveries d \
         JOIN webhooks w ON w.id = d.webhook_id AND w.app_id = d.app_id \
         JOIN apps a ON a.id = d.app_id"
    )
}

#[async_trait]
impl Store for SqliteStore {
    async fn create_app(&self, app: &App) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO apps (id, name, management_token, created_at) VALUES (?, ?, ?, ?)",
        )
        .bind(&app.id)
        .bind(&app.name)
        .bind(&app.management_token)
        .bind(app.created_at)
        .execute(&mut *self.writer.acquire().await?)
        .await
        .map_err(conflict(
            "application id or management token already in use",
        ))?;
        Ok(())
    }

    async fn app(&self, id: &str) -> StoreResult<Option<App>> {
        let row =
            sqlx::query("SELECT id, name, management_token, created_at FROM apps WHERE id = ?")
                .bind(id)
                .fetch_optional(&self.readers)
                .await?;
        row.as_ref().map(app_from_row).transpose()
    }

    async fn app_by_token(&self, token: &str) -> StoreResult<Option<App>> {
        let since = match self.apps_by_token.get(token) {
            Ok(app) => return Ok(Some(app)),
            Err(since) => since,
        };
        let row = sqlx::query(
            "SELECT id, name, management_token, created_at FROM apps WHERE management_token = ?",
        )
        .bind(token)
        .fetch_optional(&self.readers)
        .await?;
        let app = row.as_ref().map(app_from_row).transpose()?;
        if let Some(app) = &app {
            self.apps_by_token.insert(since, token, app.clone());
        }
        Ok(app)
    }

    async fn list_apps(&self) -> StoreResult<Vec<App>> {
        let rows = sqlx::query(
            "SELECT id, name, management_token, created_at FROM apps ORDER BY created_at, id",
        )
        .fetch_all(&self.readers)
        .await?;
        rows.iter().map(app_from_row).collect()
    }

    async fn set_app_token(&self, app_id: &str, token: &str) -> StoreResult<()> {
        let mut held = self.writer.acquire().await?;
        sqlx::query("UPDATE apps SET management_token = ? WHERE id = ?")
            .bind(token)
            .bind(app_id)
            .execute(&mut *held)
            .await
            .map_err(conflict(
                "management token already in use by another application",
            ))?;
        // The old token must stop working at once, and no delivery be signed with it.
        self.apps_by_token.invalidate(|_, app| app.id == app_id);
        // Before the write connection is let go: no claim reads the old token after this.
        self.forget_cached_webhooks(|webhook| webhook.app_id == app_id);
        drop(held);
        Ok(())
    }

    async fn create_vehicle(&self, vehicle: &Vehicle) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO vehicles (id, app_id, user_id, access_token, make, model, year, vin, mode, \
             simulated, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
        .execute(&mut *self.writer.acquire().await?)
        .await
        .map_err(conflict("vehicle id, or VIN within the application, already in use"))?;
        Ok(())
    }

    async fn create_vehicles(&self, vehicles: &[Vehicle]) -> StoreResult<()> {
        let mut tx = self.write_tx().await?;
        for chunk in vehicles.chunks(ROWS_PER_INSERT) {
            let mut insert = QueryBuilder::<Sqlite>::new(
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
        // Ids are unique across applications: a cached vehicle of another application means
        // this one has none by that id.
        let since = match self.vehicles.get(id) {
            Ok(vehicle) => return Ok((vehicle.app_id == app_id).then_some(vehicle)),
            Err(since) => since,
        };
        let row = sqlx::query(&format!(
            "SELECT {VEHICLE_COLS} FROM vehicles WHERE id = ? AND app_id = ?"
        ))
        .bind(id)
        .bind(app_id)
        .fetch_optional(&self.readers)
        .await?;
        let vehicle = row.as_ref().map(vehicle_from_row).transpose()?;
        if let Some(vehicle) = &vehicle {
            self.vehicles.insert(since, id, vehicle.clone());
        }
        Ok(vehicle)
    }

    async fn vehicle_by_token(&self, token: &str) -> StoreResult<Option<Vehicle>> {
        // Tokens are not unique by schema; the oldest vehicle answers deterministically.
        let row = sqlx::query(&format!(
            "SELECT {VEHICLE_COLS} FROM vehicles WHERE access_token = ? ORDER BY created_at, seq LIMIT 1"
        ))
        .bind(token)
        .fetch_optional(&self.readers)
        .await?;
        row.as_ref().map(vehicle_from_row).transpose()
    }

    async fn list_vehicles(
        &self,
        app_id: &str,
        user_id: Option<&str>,
        page: Page,
    ) -> StoreResult<(Vec<Vehicle>, i64)> {
        // One read transaction, so the page and the total come from the same snapshot.
        let mut tx = self.readers.begin().await?;
        // Two statements rather than `? IS NULL OR user_id = ?`, which would keep SQLite from
        // using the per-user index.
        let (rows, total) = match user_id {
            None => {
                let rows = sqlx::query(&format!(
                    "SELECT {VEHICLE_COLS} FROM vehicles WHERE app_id = ? \
                     ORDER BY created_at, seq LIMIT ? OFFSET ?"
                ))
                .bind(app_id)
                .bind(page.limit)
                .bind(page.offset)
                .fetch_all(&mut *tx)
                .await?;
                let total: i64 =
                    sqlx::query_scalar("SELECT COUNT(*) FROM vehicles WHERE app_id = ?")
                        .bind(app_id)
                        .fetch_one(&mut *tx)
                        .await?;
                (rows, total)
            }
            Some(user) => {
                let rows = sqlx::query(&format!(
                    "SELECT {VEHICLE_COLS} FROM vehicles WHERE app_id = ? AND user_id = ? \
                     ORDER BY created_at, seq LIMIT ? OFFSET ?"
                ))
                .bind(app_id)
                .bind(user)
                .bind(page.limit)
                .bind(page.offset)
                .fetch_all(&mut *tx)
                .await?;
                let total: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM vehicles WHERE app_id = ? AND user_id = ?",
                )
                .bind(app_id)
                .bind(user)
                .fetch_one(&mut *tx)
                .await?;
                (rows, total)
            }
        };
        tx.commit().await?;
        let vehicles = rows
            .iter()
            .map(vehicle_from_row)
            .collect::<StoreResult<Vec<_>>>()?;
        Ok((vehicles, total))
    }

    async fn delete_vehicle(&self, app_id: &str, id: &str) -> StoreResult<bool> {
        // Signals, errors and subscriptions go with it by ON DELETE CASCADE; deliveries stay as
        // the log.
        let done = sqlx::query("DELETE FROM vehicles WHERE id = ? AND app_id = ?")
            .bind(id)
            .bind(app_id)
            .execute(&mut *self.writer.acquire().await?)
            .await?;
        let deleted = done.rows_affected() > 0;
        if deleted {
            self.vehicles.invalidate(|key, _| key == id);
        }
        Ok(deleted)
    }

    async fn apply_ingest(
        &self,
        vehicle_id: &str,
        signals: &[SignalValue],
        errors: Option<&[VehicleErrorState]>,
        now: Millis,
    ) -> StoreResult<IngestApplied> {
        let item = IngestItem {
            vehicle_id,
            signals,
            errors,
            now,
            render: None,
        };
        Ok(self.ingest_one(item).await?.0)
    }

    fn groups_ingests(&self) -> bool {
        true
    }

    fn write_busy(&self) -> Option<Duration> {
        Some(self.writer.busy())
    }

    async fn apply_ingest_batch(
        &self,
        items: &[IngestItem<'_>],
    ) -> Vec<StoreResult<(IngestApplied, usize)>> {
        if items.len() > 1 {
            match self.ingest(items).await {
                Ok(results) => return results.into_iter().map(Ok).collect(),
                // One item's failure (a vehicle deleted meanwhile, say) rolled the group back:
                // apply each alone, so it fails alone.
                Err(err) => tracing::debug!(%err, "group ingest failed; applying one by one"),
            }
        }
        let mut results = Vec::with_capacity(items.len());
        for item in items {
            results.push(self.ingest_one(*item).await);
        }
        results
    }

    async fn apply_ingest_rendered(
        &self,
        vehicle_id: &str,
        signals: &[SignalValue],
        errors: Option<&[VehicleErrorState]>,
        now: Millis,
        render: RenderChanges<'_>,
    ) -> StoreResult<(IngestApplied, usize)> {
        self.ingest_one(IngestItem {
            vehicle_id,
            signals,
            errors,
            now,
            render: Some(render),
        })
        .await
    }

    async fn signals(&self, vehicle_id: &str) -> StoreResult<HashMap<String, SignalValue>> {
        let rows = sqlx::query(
            "SELECT code, body, oem_updated_at, retrieved_at FROM signals WHERE vehicle_id = ?",
        )
        .bind(vehicle_id)
        .fetch_all(&self.readers)
        .await?;
        let mut signals = HashMap::with_capacity(rows.len());
        for row in &rows {
            let value = signal_from_row(row)?;
            signals.insert(value.code.clone(), value);
        }
        Ok(signals)
    }

    async fn vehicle_errors(&self, vehicle_id: &str) -> StoreResult<Vec<VehicleErrorState>> {
        let rows = sqlx::query(
            "SELECT error_type, code, description, signals FROM vehicle_errors \
             WHERE vehicle_id = ? ORDER BY position",
        )
        .bind(vehicle_id)
        .fetch_all(&self.readers)
        .await?;
        rows.iter().map(error_from_row).collect()
    }

    async fn create_webhook(&self, webhook: &Webhook) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO webhooks (id, app_id, name, kind, callback_uri, error_callback_uri, config, \
             status, disabled_reason, signing_secret, previous_secret, previous_secret_expires_at, \
             max_payload_bytes, created_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
        .execute(&mut *self.writer.acquire().await?)
        .await
        .map_err(conflict("webhook id already in use"))?;
        Ok(())
    }

    async fn webhook(&self, app_id: &str, id: &str) -> StoreResult<Option<Webhook>> {
        let row = sqlx::query(&format!(
            "SELECT {WEBHOOK_COLS} FROM webhooks w WHERE w.id = ? AND w.app_id = ?"
        ))
        .bind(id)
        .bind(app_id)
        .fetch_optional(&self.readers)
        .await?;
        row.map(|row| webhook_at(&row, 0)).transpose()
    }

    async fn list_webhooks(&self, app_id: &str) -> StoreResult<Vec<Webhook>> {
        let rows = sqlx::query(&format!(
            "SELECT {WEBHOOK_COLS} FROM webhooks w WHERE w.app_id = ? ORDER BY w.created_at, w.seq"
        ))
        .bind(app_id)
        .fetch_all(&self.readers)
        .await?;
        rows.iter().map(|row| webhook_at(row, 0)).collect()
    }

    async fn update_webhook(&self, webhook: &Webhook) -> StoreResult<()> {
        let mut held = self.writer.acquire().await?;
        // Everything but the identity (id, application) and the creation time.
        sqlx::query(
            "UPDATE webhooks SET name = ?, kind = ?, callback_uri = ?, error_callback_uri = ?, \
             config = ?, status = ?, disabled_reason = ?, signing_secret = ?, previous_secret = ?, \
             previous_secret_expires_at = ?, max_payload_bytes = ?, updated_at = ? \
             WHERE id = ? AND app_id = ?",
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
        .execute(&mut *held)
        .await?;
        // Before the write connection is let go, as every invalidation of kept webhooks.
        self.forget_cached_webhooks(|kept| kept.id == webhook.id);
        drop(held);
        Ok(())
    }

    async fn delete_webhook(&self, app_id: &str, id: &str) -> StoreResult<bool> {
        let mut tx = self.write_tx().await?;
        // Subscriptions go with the webhook by ON DELETE CASCADE.
        let deleted = sqlx::query("DELETE FROM webhooks WHERE id = ? AND app_id = ?")
            .bind(id)
            .bind(app_id)
            .execute(&mut *tx)
            .await?;
        if deleted.rows_affected() == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        // The outbox must not keep what can no longer be sent: its pending deliveries fail and
        // stay in the log. `updated_at` is left alone: this call carries no platform time.
        sqlx::query(
            "UPDATE deliveries SET status = 'failed', last_error = ?, next_attempt_at = NULL \
             WHERE webhook_id = ? AND app_id = ? AND status = 'pending'",
        )
        .bind(WEBHOOK_DELETED)
        .bind(id)
        .bind(app_id)
        .execute(&mut *tx)
        .await?;
        let held = tx.commit().await?;
        self.forget_cached_webhooks(|kept| kept.id == id);
        drop(held);
        Ok(true)
    }

    async fn subscribe(&self, webhook_id: &str, vehicle_id: &str, at: Millis) -> StoreResult<bool> {
        let done = sqlx::query(
            "INSERT INTO subscriptions (webhook_id, vehicle_id, created_at) VALUES (?, ?, ?) \
             ON CONFLICT (webhook_id, vehicle_id) DO NOTHING",
        )
        .bind(webhook_id)
        .bind(vehicle_id)
        .bind(at)
        .execute(&mut *self.writer.acquire().await?)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn subscribe_many(
        &self,
        webhook_id: &str,
        vehicle_ids: &[String],
        at: Millis,
    ) -> StoreResult<u64> {
        let mut tx = self.write_tx().await?;
        let mut added = 0;
        for chunk in vehicle_ids.chunks(ROWS_PER_INSERT) {
            let mut insert = QueryBuilder::<Sqlite>::new(
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
        let done = sqlx::query("DELETE FROM subscriptions WHERE webhook_id = ? AND vehicle_id = ?")
            .bind(webhook_id)
            .bind(vehicle_id)
            .execute(&mut *self.writer.acquire().await?)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn subscriptions(
        &self,
        webhook_id: &str,
        page: Page,
    ) -> StoreResult<(Vec<Subscription>, i64)> {
        let mut tx = self.readers.begin().await?;
        let rows = sqlx::query(
            "SELECT webhook_id, vehicle_id, created_at FROM subscriptions WHERE webhook_id = ? \
             ORDER BY created_at, vehicle_id LIMIT ? OFFSET ?",
        )
        .bind(webhook_id)
        .bind(page.limit)
        .bind(page.offset)
        .fetch_all(&mut *tx)
        .await?;
        let total: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM subscriptions WHERE webhook_id = ?")
                .bind(webhook_id)
                .fetch_one(&mut *tx)
                .await?;
        tx.commit().await?;
        let subscriptions = rows
            .iter()
            .map(|row| {
                Ok(Subscription {
                    webhook_id: row.try_get("webhook_id")?,
                    vehicle_id: row.try_get("vehicle_id")?,
                    created_at: row.try_get("created_at")?,
                })
            })
            .collect::<StoreResult<Vec<_>>>()?;
        Ok((subscriptions, total))
    }

    async fn enqueue_many(&self, deliveries: &[NewDelivery]) -> StoreResult<()> {
        if deliveries.is_empty() {
            return Ok(());
        }
        let mut tx = self.write_tx().await?;
        let first_seq = insert_deliveries(&mut tx, deliveries).await?;
        self.commit_keeping(tx, first_seq, deliveries).await?;
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
        let claim = ClaimRequest {
            now,
            lease_now,
            lease_until,
            limit,
            per_webhook,
            skip_webhooks,
        };
        if claim_is_empty(&claim) {
            return Ok(Vec::new());
        }
        let due = self.complete_then_claim(&[], Some(&claim)).await?;
        self.read_leased(due).await
    }

    async fn claim_one(
        &self,
        app_id: &str,
        delivery_id: &str,
        lease_until: Millis,
    ) -> StoreResult<Option<ClaimedDelivery>> {
        // A delivery under a live lease is being sent right now: a second, concurrent attempt
        // would only race it. Leases are real time, which the store can read itself.
        let lease_now = real_now_ms();
        // Held, not in a transaction: nothing is written, and the lease is taken after the
        // last await, so a caller that goes away cannot leave a lease that nobody sends.
        let mut held = self.writer.acquire().await?;
        // The attempt (or retry) made now changes the row, perhaps before any claim has taken
        // it. Every payload committed so far was kept before its writer let go.
        self.fresh.clear();
        let row = sqlx::query(&format!(
            "{} WHERE d.id = ? AND d.app_id = ?",
            claim_select()
        ))
        .bind(delivery_id)
        .bind(app_id)
        .fetch_optional(&mut *held)
        .await?;
        let claimed = match &row {
            Some(row) => {
                let seq: i64 = row.try_get(DELIVERY_COL_COUNT + WEBHOOK_COL_COUNT + 1)?;
                if self.leases.is_leased(seq, lease_now) {
                    None
                } else {
                    let claimed = claimed_from_row(row)?;
                    // Taken while the write connection is held, as every claim's leases are.
                    self.leases.lease(seq, delivery_id, lease_until);
                    Some(claimed)
                }
            }
            None => None,
        };
        drop(held);
        Ok(claimed)
    }

    async fn complete_many(&self, completions: &[Completion]) -> StoreResult<()> {
        if completions.is_empty() {
            return Ok(());
        }
        self.complete_then_claim(completions, None).await?;
        Ok(())
    }

    async fn complete_and_claim(
        &self,
        completions: &[Completion],
        claim: &ClaimRequest<'_>,
    ) -> (StoreResult<()>, StoreResult<Vec<ClaimedDelivery>>) {
        if completions.is_empty() {
            return (Ok(()), claim.run(self).await);
        }
        match self.complete_then_claim(completions, Some(claim)).await {
            Ok(due) => (Ok(()), self.read_leased(due).await),
            // Nothing of the script stays; the claim alone may still succeed.
            Err(err) => (Err(err), claim.run(self).await),
        }
    }

    async fn next_due_at(&self) -> StoreResult<Option<Millis>> {
        // Same population as claim_due (the webhook must exist), so a dispatcher told "due now"
        // finds something to claim instead of spinning.
        let due: Option<Millis> = sqlx::query_scalar(
            "SELECT d.next_attempt_at FROM deliveries d JOIN webhooks w ON w.id = d.webhook_id \
             WHERE d.status = 'pending' AND d.next_attempt_at IS NOT NULL \
             ORDER BY d.next_attempt_at LIMIT 1",
        )
        .fetch_optional(&self.readers)
        .await?;
        Ok(due)
    }

    async fn release_all_leases(&self) -> StoreResult<u64> {
        // The leases live in this store's memory (`memory_leases`): a restarted process has
        // none, and a running one ends its own.
        let _held = self.writer.acquire().await?;
        Ok(u64::try_from(self.leases.clear()).unwrap_or(u64::MAX))
    }

    async fn outbox_depth(&self) -> StoreResult<i64> {
        let depth: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM deliveries WHERE status = 'pending' AND next_attempt_at IS NOT NULL")
                .fetch_one(&self.readers)
                .await?;
        Ok(depth)
    }

    async fn delivery(&self, app_id: &str, id: &str) -> StoreResult<Option<Delivery>> {
        let row = sqlx::query(&format!(
            "SELECT {DELIVERY_COLS} FROM deliveries d WHERE d.id = ? AND d.app_id = ?"
        ))
        .bind(id)
        .bind(app_id)
        .fetch_optional(&self.readers)
        .await?;
        row.map(|row| delivery_at(&row, 0)).transpose()
    }

    async fn attempts(&self, delivery_id: &str) -> StoreResult<Vec<Attempt>> {
        let rows = sqlx::query(
            "SELECT delivery_id, number, wire_delivery_id, started_at, status_code, duration_ms, error, \
             response_body FROM attempts WHERE delivery_id = ? ORDER BY number",
        )
        .bind(delivery_id)
        .fetch_all(&self.readers)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(Attempt {
                    delivery_id: row.try_get("delivery_id")?,
                    number: row.try_get("number")?,
                    wire_delivery_id: row.try_get("wire_delivery_id")?,
                    started_at: row.try_get("started_at")?,
                    status_code: row.try_get("status_code")?,
                    duration_ms: row.try_get("duration_ms")?,
                    error: row.try_get("error")?,
                    response_body: row.try_get("response_body")?,
                })
            })
            .collect()
    }

    async fn list_deliveries(
        &self,
        app_id: &str,
        webhook_id: &str,
        filter: &DeliveryFilter,
        page: Page,
    ) -> StoreResult<(Vec<Delivery>, i64)> {
        // The webhook index drives both statements; the optional filters are cheap row checks
        // on that range, so NULL-tolerant terms keep one prepared statement for every filter.
        const WHERE: &str =
            "WHERE d.app_id = ?1 AND d.webhook_id = ?2 AND (?3 IS NULL OR d.status = ?3) \
             AND (?4 IS NULL OR EXISTS (SELECT 1 FROM delivery_vehicles dv \
             WHERE dv.delivery_id = d.id AND dv.vehicle_id = ?4))";
        let status = filter.status.map(DeliveryStatus::as_str);
        let vehicle = filter.vehicle_id.as_deref();
        let mut tx = self.readers.begin().await?;
        let rows = sqlx::query(&format!(
            "SELECT {DELIVERY_COLS} FROM deliveries d {WHERE} \
             ORDER BY d.created_at DESC, d.seq DESC LIMIT ?5 OFFSET ?6"
        ))
        .bind(app_id)
        .bind(webhook_id)
        .bind(status)
        .bind(vehicle)
        .bind(page.limit)
        .bind(page.offset)
        .fetch_all(&mut *tx)
        .await?;
        let total: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM deliveries d {WHERE}"))
            .bind(app_id)
            .bind(webhook_id)
            .bind(status)
            .bind(vehicle)
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        let deliveries = rows
            .iter()
            .map(|row| delivery_at(row, 0))
            .collect::<StoreResult<Vec<_>>>()?;
        Ok((deliveries, total))
    }

    async fn subscribed_webhooks(&self, vehicle_id: &str) -> StoreResult<Vec<Webhook>> {
        let rows = sqlx::query(&format!(
            "SELECT {WEBHOOK_COLS} FROM subscriptions s JOIN webhooks w ON w.id = s.webhook_id \
             WHERE s.vehicle_id = ? ORDER BY w.created_at, w.id"
        ))
        .bind(vehicle_id)
        .fetch_all(&self.readers)
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
        // Only the pairs are read here; the webhooks come from `webhooks_by_id`. Decoding
        // every column of a webhook again for each ingest of a group was most of this read.
        let pairs: Vec<(String, String)> = sqlx::query_as(
            "SELECT vehicle_id, webhook_id FROM subscriptions \
             WHERE vehicle_id IN (SELECT value FROM json_each(?))",
        )
        .bind(to_json(vehicle_ids)?)
        .fetch_all(&self.readers)
        .await?;
        let webhooks = self
            .cached_webhooks(pairs.iter().map(|(_, webhook)| webhook.as_str()))
            .await?;
        let mut by_vehicle: HashMap<String, Vec<Arc<Webhook>>> = HashMap::new();
        for (vehicle, webhook) in pairs {
            // A webhook deleted since the pairs were read is left out, as its subscriptions
            // went with it.
            if let Some((webhook, _)) = webhooks.get(&webhook) {
                by_vehicle.entry(vehicle).or_default().push(webhook.clone());
            }
        }
        for list in by_vehicle.values_mut() {
            list.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        }
        Ok(by_vehicle)
    }

    async fn schedule_set(&self, webhook_id: &str, boundary_at: Option<Millis>) -> StoreResult<()> {
        match boundary_at {
            Some(at) => {
                sqlx::query(
                    "INSERT INTO schedules (webhook_id, boundary_at, cursor) \
                     SELECT id, ?, NULL FROM webhooks WHERE id = ? \
                     ON CONFLICT (webhook_id) DO UPDATE SET boundary_at = excluded.boundary_at, cursor = NULL",
                )
                .bind(at)
                .bind(webhook_id)
                .execute(&mut *self.writer.acquire().await?)
                .await?;
            }
            None => {
                sqlx::query("DELETE FROM schedules WHERE webhook_id = ?")
                    .bind(webhook_id)
                    .execute(&mut *self.writer.acquire().await?)
                    .await?;
            }
        }
        Ok(())
    }

    async fn due_schedules(&self, now: Millis, limit: i64) -> StoreResult<Vec<ScheduleDue>> {
        let rows = sqlx::query(&format!(
            "SELECT {WEBHOOK_COLS}, s.boundary_at, s.cursor FROM schedules s \
             JOIN webhooks w ON w.id = s.webhook_id \
             WHERE s.boundary_at <= ? ORDER BY s.boundary_at, s.webhook_id LIMIT ?"
        ))
        .bind(now)
        .bind(limit)
        .fetch_all(&self.readers)
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

    async fn schedule_page(
        &self,
        webhook_id: &str,
        subscribed_before: Millis,
        after_vehicle: Option<&str>,
        limit: i64,
    ) -> StoreResult<Vec<VehicleSignals>> {
        // One row per vehicle, its signals folded into one JSON array by SQLite: a page of a
        // large boundary is a thousand rows, not a thousand plus one per signal, each of which
        // the driver would hand across threads on its own.
        let rows = sqlx::query(&format!(
            "SELECT {}, (SELECT json_group_array(json_array(g.code, json(g.body), \
             g.oem_updated_at, g.retrieved_at)) FROM signals g WHERE g.vehicle_id = v.id) AS signals \
             FROM subscriptions s JOIN vehicles v ON v.id = s.vehicle_id \
             WHERE s.webhook_id = ? AND s.created_at < ? AND s.vehicle_id > ? \
             ORDER BY s.vehicle_id LIMIT ?",
            prefixed_vehicle_cols()
        ))
        .bind(webhook_id)
        .bind(subscribed_before)
        .bind(after_vehicle.unwrap_or(""))
        .bind(limit)
        .fetch_all(&self.readers)
        .await?;
        rows.iter()
            .map(|row| {
                let folded: String = row.try_get("signals")?;
                let folded: Vec<(String, Value, Option<Millis>, Millis)> =
                    from_json(&folded, "vehicle signals")?;
                Ok(VehicleSignals {
                    vehicle: vehicle_from_row(row)?,
                    signals: folded
                        .into_iter()
                        .map(|(code, body, oem_updated_at, retrieved_at)| {
                            let value = SignalValue {
                                code: code.clone(),
                                body,
                                oem_updated_at,
                                retrieved_at,
                            };
                            (code, value)
                        })
                        .collect(),
                })
            })
            .collect()
    }

    async fn schedule_progress(
        &self,
        step: &ScheduleProgress,
        deliveries: &[NewDelivery],
    ) -> StoreResult<bool> {
        let mut tx = self.write_tx().await?;
        let fenced = "WHERE webhook_id = ? AND boundary_at = ? AND cursor IS ?";
        let sql = match (&step.new_cursor, step.next_boundary_at) {
            (Some(_), _) => format!("UPDATE schedules SET boundary_at = ?, cursor = ? {fenced}"),
            (None, Some(_)) => {
                format!("UPDATE schedules SET boundary_at = ?, cursor = NULL {fenced}")
            }
            (None, None) => format!("DELETE FROM schedules {fenced}"),
        };
        let mut query = sqlx::query(&sql);
        match (&step.new_cursor, step.next_boundary_at) {
            (Some(cursor), _) => query = query.bind(step.delivering_boundary_at).bind(cursor),
            (None, Some(next)) => query = query.bind(next),
            (None, None) => {}
        }
        let moved = query
            .bind(&step.webhook_id)
            .bind(step.boundary_at)
            .bind(&step.expected_cursor)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if moved == 0 {
            // Dropping the transaction rolls it back: nothing of this step is written.
            return Ok(false);
        }
        let first_seq = insert_deliveries(&mut tx, deliveries).await?;
        self.commit_keeping(tx, first_seq, deliveries).await?;
        Ok(true)
    }

    async fn set_subscription_due(
        &self,
        webhook_id: &str,
        vehicle_id: &str,
        due: Option<Millis>,
    ) -> StoreResult<()> {
        sqlx::query(
            "UPDATE subscriptions SET next_due_at = ? WHERE webhook_id = ? AND vehicle_id = ?",
        )
        .bind(due)
        .bind(webhook_id)
        .bind(vehicle_id)
        .execute(&mut *self.writer.acquire().await?)
        .await?;
        Ok(())
    }

    async fn pull_dynamic_due(&self, vehicle_id: &str, at_latest: Millis) -> StoreResult<u64> {
        let moved = sqlx::query(
            "UPDATE subscriptions SET next_due_at = ? \
             WHERE vehicle_id = ? AND next_due_at IS NOT NULL AND next_due_at > ?",
        )
        .bind(at_latest)
        .bind(vehicle_id)
        .bind(at_latest)
        .execute(&mut *self.writer.acquire().await?)
        .await?
        .rows_affected();
        Ok(moved)
    }

    async fn due_dynamic(&self, now: Millis, limit: i64) -> StoreResult<Vec<DynamicDue>> {
        let rows = sqlx::query(&format!(
            "SELECT {WEBHOOK_COLS}, s.next_due_at, {} FROM subscriptions s \
             JOIN webhooks w ON w.id = s.webhook_id JOIN vehicles v ON v.id = s.vehicle_id \
             WHERE s.next_due_at IS NOT NULL AND s.next_due_at <= ? \
             ORDER BY s.next_due_at, s.webhook_id, s.vehicle_id LIMIT ?",
            prefixed_vehicle_cols()
        ))
        .bind(now)
        .bind(limit)
        .fetch_all(&self.readers)
        .await?;
        let mut due = Vec::with_capacity(rows.len());
        let mut vehicles = Vec::with_capacity(rows.len());
        for row in &rows {
            due.push((
                webhook_at(row, 0)?,
                row.try_get::<i64, _>(WEBHOOK_COL_COUNT)?,
            ));
            vehicles.push(vehicle_from_row(row)?);
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

    async fn dynamic_progress(
        &self,
        advances: &[DynamicAdvance],
        deliveries: &[NewDelivery],
    ) -> StoreResult<bool> {
        let mut tx = self.write_tx().await?;
        for advance in advances {
            let moved = sqlx::query(
                "UPDATE subscriptions SET next_due_at = ? \
                 WHERE webhook_id = ? AND vehicle_id = ? AND next_due_at = ?",
            )
            .bind(advance.next_due_at)
            .bind(&advance.webhook_id)
            .bind(&advance.vehicle_id)
            .bind(advance.due_at)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if moved == 0 {
                return Ok(false);
            }
        }
        let first_seq = insert_deliveries(&mut tx, deliveries).await?;
        self.commit_keeping(tx, first_seq, deliveries).await?;
        Ok(true)
    }

    async fn next_trigger_at(&self) -> StoreResult<Option<Millis>> {
        let next: Option<i64> = sqlx::query_scalar(
            "SELECT MIN(t) FROM (SELECT MIN(boundary_at) AS t FROM schedules \
             UNION ALL SELECT MIN(next_due_at) FROM subscriptions WHERE next_due_at IS NOT NULL)",
        )
        .fetch_one(&self.readers)
        .await?;
        Ok(next)
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
            .fetch_all(&self.readers)
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
        // delivery_vehicles_by_vehicle finds the vehicle's deliveries without reading any
        // webhook's whole log.
        let rows = sqlx::query(&format!(
            "SELECT {DELIVERY_COLS} FROM deliveries d \
             WHERE d.app_id = ?1 AND d.id IN \
             (SELECT dv.delivery_id FROM delivery_vehicles dv WHERE dv.vehicle_id = ?2) \
             ORDER BY d.created_at DESC, d.seq DESC LIMIT ?3"
        ))
        .bind(app_id)
        .bind(vehicle_id)
        .bind(limit)
        .fetch_all(&self.readers)
        .await?;
        rows.iter().map(|row| delivery_at(row, 0)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::conformance::{self, conformance_cases};
    use crate::store::SharedStore;
    use sqlx::{ConnectOptions, Executor};

    async fn fresh() -> (tempfile::TempDir, SharedStore) {
        let dir = tempfile::TempDir::new().expect("temporary directory");
        let store = SqliteStore::open(&dir.path().join("fleethook.db"))
            .await
            .expect("open a fresh SQLite store");
        (dir, Arc::new(store))
    }

    /// One test per conformance case, each on a database of its own.
    macro_rules! sqlite_conformance {
        ($($case:ident),* $(,)?) => {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let (_dir, store) = fresh().await;
                    conformance::$case(store).await;
                }
            )*
        };
    }

    conformance_cases!(sqlite_conformance);

    /// A database written before bodies had a table of their own keeps every body, and the
    /// store reads and claims it as before.
    #[tokio::test]
    async fn bodies_move_out_of_the_outbox_rows_on_upgrade() {
        let dir = tempfile::TempDir::new().expect("temporary directory");
        let path = dir.path().join("old.db");
        {
            let mut before = sqlx::migrate!("./migrations/sqlite");
            let at_0004 = before
                .migrations
                .iter()
                .position(|m| m.version == 4)
                .expect("migration 0004");
            before.migrations = before.migrations[..at_0004].to_vec().into();
            let options = SqliteConnectOptions::new()
                .filename(&path)
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal);
            let pool = SqlitePoolOptions::new()
                .max_connections(1)
                .connect_with(options)
                .await
                .expect("open");
            before.run(&pool).await.expect("migrations before 0004");
            sqlx::query("INSERT INTO apps VALUES ('app', 'old', 'token', 0)")
                .execute(&pool)
                .await
                .expect("app");
            sqlx::query(
                "INSERT INTO webhooks (id, app_id, name, kind, callback_uri, config, status, \
                 signing_secret, max_payload_bytes, created_at, updated_at) \
                 VALUES ('wh', 'app', 'old', 'vehicleState', 'http://127.0.0.1:9/', '{}', \
                 'enabled', 'secret', 1000000, 0, 0)",
            )
            .execute(&pool)
            .await
            .expect("webhook");
            sqlx::query(
                "INSERT INTO deliveries (id, app_id, webhook_id, event_id, purpose, target_uri, \
                 body, event_type, vehicle_ids, status, next_attempt_at, created_at, updated_at) \
                 VALUES ('d1', 'app', 'wh', 'e1', 'event', 'http://127.0.0.1:9/', \
                 '{\"old\":true}', 'VEHICLE_STATE', '[]', 'pending', 0, 0, 0)",
            )
            .execute(&pool)
            .await
            .expect("delivery");
            pool.close().await;
        }
        let store = SqliteStore::open(&path).await.expect("open and upgrade");
        let delivery = store
            .delivery("app", "d1")
            .await
            .expect("read")
            .expect("the delivery is still there");
        assert_eq!(delivery.body, r#"{"old":true}"#);
        let claimed = store.claim_due(0, 0, 1, 10, 10, &[]).await.expect("claim");
        assert_eq!(claimed.len(), 1);
        assert_eq!(claimed[0].delivery.body, r#"{"old":true}"#);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn conformance_run_all_shares_one_database() {
        let (_dir, store) = fresh().await;
        conformance::run_all(store).await;
    }

    #[tokio::test]
    async fn second_open_of_one_file_is_refused_while_the_first_is_open() {
        let dir = tempfile::TempDir::new().expect("temporary directory");
        let path = dir.path().join("fleethook.db");
        let first = SqliteStore::open(&path).await.expect("first open");
        match SqliteStore::open(&path).await {
            Err(StoreError::Locked(message)) => {
                let shown = path.display().to_string();
                assert!(
                    message.contains(&shown),
                    "message should name {shown}: {message}"
                );
                assert!(
                    message.contains(".lock"),
                    "message should name the lock file: {message}"
                );
                assert_eq!(StoreError::Locked(message.clone()).to_string(), message);
            }
            Err(other) => panic!("second open should be Locked, got {other}"),
            Ok(_) => panic!("second open of a file in use must fail"),
        }
        first.close().await;
        drop(first);
        SqliteStore::open(&path)
            .await
            .expect("the file opens again once the first store is gone");
    }

    #[tokio::test]
    async fn shared_open_writes_beside_a_serving_store() {
        let dir = tempfile::TempDir::new().expect("temporary directory");
        let path = dir.path().join("fleethook.db");
        let serving = SqliteStore::open(&path).await.expect("serving open");
        let admin = SqliteStore::open_url_shared(&format!("sqlite://{}", path.display()))
            .await
            .expect("a shared open ignores the process lock");
        let app = App {
            id: "app-admin".into(),
            name: "added by hand".into(),
            management_token: "amt_admin".into(),
            created_at: 1_000,
        };
        admin
            .create_app(&app)
            .await
            .expect("create app beside the server");
        admin.close().await;
        assert_eq!(
            serving.app_by_token("amt_admin").await.expect("read app"),
            Some(app),
            "the serving store sees what the shared one wrote"
        );
    }

    /// Rewrites a delivery's body with the store's write connection, not through its API.
    async fn change_body_behind_its_back(store: &SqliteStore, delivery_id: &str) {
        sqlx::query(
            "UPDATE delivery_bodies SET body = 'changed' \
             WHERE seq = (SELECT seq FROM deliveries WHERE id = ?)",
        )
        .bind(delivery_id)
        .execute(&mut *store.writer.acquire().await.expect("writer"))
        .await
        .expect("change the body");
    }

    /// Whether `err` is SQLite's `SQLITE_BUSY` (any of its extended codes).
    fn is_busy(err: &sqlx::Error) -> bool {
        err.as_database_error()
            .and_then(|e| e.code())
            .and_then(|code| code.parse::<i32>().ok())
            .is_some_and(|code| code & 0xff == 5)
    }

    /// Claims what is due, as (id, body) pairs in claim order.
    async fn claimed_bodies(store: &SharedStore) -> Vec<(String, String)> {
        store
            .claim_due(5_000, 0, 500, 10, i64::MAX, &[])
            .await
            .expect("claim_due")
            .into_iter()
            .map(|c| (c.delivery.id, c.delivery.body))
            .collect()
    }

    /// A payload claimed soon after it was enqueued comes from memory (`fresh_payloads`), not
    /// from its row: a body changed behind the store's back shows that the row was not read.
    /// A manual attempt empties that memory, and a store opened beside another keeps nothing.
    #[tokio::test]
    async fn fresh_payloads_are_claimed_from_memory_until_something_else_changes_a_row() {
        let dir = tempfile::TempDir::new().expect("temporary directory");
        let path = dir.path().join("fleethook.db");
        let sqlite = Arc::new(SqliteStore::open(&path).await.expect("open"));
        let store: SharedStore = sqlite.clone();
        let app = conformance::new_app(&store, "fresh").await;
        let webhook = conformance::new_webhook(&store, &app).await;
        let kept = conformance::delivery_for(&webhook, Some(1_000), 1, &[]);
        conformance::enqueue(&store, std::slice::from_ref(&kept)).await;
        change_body_behind_its_back(&sqlite, &kept.id).await;
        assert_eq!(
            claimed_bodies(&store).await,
            [(kept.id.clone(), kept.body.clone())],
            "served from memory"
        );

        let first = conformance::delivery_for(&webhook, Some(1_000), 2, &[]);
        let other = conformance::delivery_for(&webhook, Some(1_000), 3, &[]);
        store
            .enqueue_many(&[first.clone(), other.clone()])
            .await
            .expect("enqueue");
        change_body_behind_its_back(&sqlite, &first.id).await;
        store
            .claim_one(&app.id, &other.id, 0)
            .await
            .expect("claim_one")
            .expect("exists");
        assert_eq!(
            claimed_bodies(&store).await,
            [
                (first.id.clone(), "changed".to_string()),
                (other.id.clone(), other.body.clone())
            ],
            "a manual attempt empties the memory: both read from their rows"
        );

        // What the serving store claimed is done before the shared one claims: a store opened
        // beside another cannot see the other's leases (`memory_leases`).
        let done: Vec<Completion> = [&kept, &first, &other]
            .iter()
            .map(|d| conformance::completion(&d.id, Outcome::Succeeded, 2_000))
            .collect();
        store.complete_many(&done).await.expect("complete");
        let shared = SqliteStore::open_url_shared(&format!("sqlite://{}", path.display()))
            .await
            .expect("a shared open beside the first");
        let beside = conformance::delivery_for(&webhook, Some(1_000), 4, &[]);
        shared
            .enqueue_many(std::slice::from_ref(&beside))
            .await
            .expect("enqueue beside");
        change_body_behind_its_back(&shared, &beside.id).await;
        let claimed = shared
            .claim_due(5_000, 0, 500, 10, i64::MAX, &[])
            .await
            .expect("claim_due beside");
        assert_eq!(claimed.len(), 1);
        assert_eq!(
            claimed[0].delivery.body, "changed",
            "a shared open keeps nothing"
        );
    }

    /// A claim that leased rows it could not find in memory has the next claim read its rows
    /// whole on the write connection; one that found them all in memory has the next read
    /// four numbers a row. Either way the claimed deliveries are the rows as stored.
    #[tokio::test]
    async fn claims_read_rows_whole_while_what_they_lease_is_not_in_memory() {
        let dir = tempfile::TempDir::new().expect("temporary directory");
        let sqlite = Arc::new(
            SqliteStore::open(&dir.path().join("fleethook.db"))
                .await
                .expect("open"),
        );
        let store: SharedStore = sqlite.clone();
        let app = conformance::new_app(&store, "whole").await;
        let webhook = conformance::new_webhook(&store, &app).await;
        let claim = ClaimRequest {
            now: 5_000,
            lease_now: 0,
            lease_until: 500,
            limit: 10,
            per_webhook: i64::MAX,
            skip_webhooks: &[],
        };
        let mut seq = 0;
        let mut enqueue = |count: usize| {
            let batch: Vec<NewDelivery> = (0..count)
                .map(|_| {
                    seq += 1;
                    conformance::delivery_for(&webhook, Some(1_000), seq, &[])
                })
                .collect();
            let store = store.clone();
            async move {
                store.enqueue_many(&batch).await.expect("enqueue");
                batch
            }
        };
        // Completes what was claimed last and claims again, in one turn.
        let claim_next = |claimed: Vec<ClaimedDelivery>| {
            let done: Vec<Completion> = claimed
                .iter()
                .map(|c| conformance::completion(&c.delivery.id, Outcome::Succeeded, 2_000))
                .collect();
            let (sqlite, claim) = (sqlite.clone(), &claim);
            async move {
                sqlite
                    .complete_then_claim(&done, Some(claim))
                    .await
                    .expect("claim")
            }
        };

        // A backlog not in memory (as after a restart): read whole, as stored.
        let backlog = enqueue(3).await;
        sqlite.fresh.clear();
        let leased = sqlite
            .complete_then_claim(&[], Some(&claim))
            .await
            .expect("claim");
        assert_eq!(leased.whole.len(), 3, "every row read whole");
        for payload in &backlog {
            let stored = store
                .delivery(&app.id, &payload.id)
                .await
                .expect("read")
                .expect("stored");
            assert_eq!(
                leased.whole.values().find(|d| d.id == payload.id),
                Some(&stored)
            );
        }
        let claimed = sqlite.read_leased(leased).await.expect("read leased");
        assert_eq!(claimed.len(), 3);

        // Payloads just enqueued come from memory, though this claim reads rows whole.
        let live = enqueue(1).await;
        change_body_behind_its_back(&sqlite, &live[0].id).await;
        let leased = claim_next(claimed).await;
        assert!(leased.whole.is_empty(), "nothing read whole");
        let claimed = sqlite.read_leased(leased).await.expect("read leased");
        assert_eq!(claimed[0].delivery.body, live[0].body, "served from memory");

        // All of that claim was in memory, so the next reads four numbers a row, and a row
        // that is not in memory after all is read on a reader.
        let evicted = enqueue(1).await;
        sqlite.fresh.clear();
        change_body_behind_its_back(&sqlite, &evicted[0].id).await;
        let leased = claim_next(claimed).await;
        assert!(leased.whole.is_empty(), "nothing read whole");
        let claimed = sqlite.read_leased(leased).await.expect("read leased");
        assert_eq!(claimed[0].delivery.body, "changed", "read from its row");

        // That one was not in memory: the next claim reads whole again.
        let evicted = enqueue(1).await;
        sqlite.fresh.clear();
        let leased = claim_next(claimed).await;
        assert_eq!(
            leased.whole.values().map(|d| &d.id).collect::<Vec<_>>(),
            [&evicted[0].id]
        );
    }

    /// A retry due at once is claimed again in the round that records it: a claim leaves
    /// out the leased deliveries, but not those whose completions run first in its own
    /// transaction (as when leases were written to the rows).
    #[tokio::test]
    async fn a_retry_due_at_once_is_claimed_in_the_round_that_records_it() {
        let (_dir, store) = fresh().await;
        let app = conformance::new_app(&store, "retry now").await;
        let webhook = conformance::new_webhook(&store, &app).await;
        let d = conformance::delivery_for(&webhook, Some(1_000), 1, &[]);
        conformance::enqueue(&store, std::slice::from_ref(&d)).await;
        let claim = ClaimRequest {
            now: 5_000,
            lease_now: 0,
            lease_until: 100,
            limit: 10,
            per_webhook: i64::MAX,
            skip_webhooks: &[],
        };
        assert_eq!(claim.run(&*store).await.expect("claim").len(), 1);
        assert!(
            claim.run(&*store).await.expect("claim").is_empty(),
            "leased"
        );
        let (written, claimed) = store
            .complete_and_claim(
                &[conformance::completion(
                    &d.id,
                    Outcome::RetryAt(5_000),
                    5_000,
                )],
                &claim,
            )
            .await;
        written.expect("the retry is written");
        let ids: Vec<String> = claimed
            .expect("the claim is made")
            .into_iter()
            .map(|c| c.delivery.id)
            .collect();
        assert_eq!(ids, vec![d.id.clone()], "claimed again at once");
        assert!(
            claim.run(&*store).await.expect("claim").is_empty(),
            "and leased again"
        );
    }

    /// Each write adds the time it held the write connection; reads add nothing.
    #[tokio::test]
    async fn write_busy_adds_up_the_writes_only() {
        let (_dir, store) = fresh().await;
        let opened = store.write_busy().expect("SQLite has one write connection");
        assert!(opened > Duration::ZERO, "the migrations held it");
        store.list_apps().await.expect("read");
        assert_eq!(store.write_busy(), Some(opened), "a read does not hold it");
        let app = App {
            id: "app-busy".into(),
            name: "busy".into(),
            management_token: "amt_busy".into(),
            created_at: 1_000,
        };
        store.create_app(&app).await.expect("write");
        assert!(store.write_busy().expect("still SQLite") > opened);
    }

    #[tokio::test]
    async fn data_survives_close_and_reopen() {
        let dir = tempfile::TempDir::new().expect("temporary directory");
        let path = dir.path().join("fleethook.db");
        let app = App {
            id: "app-reopen".into(),
            name: "reopen".into(),
            management_token: "amt_reopen".into(),
            created_at: 1_000,
        };
        {
            let store = SqliteStore::open(&path).await.expect("first open");
            store.create_app(&app).await.expect("create app");
            store.close().await;
        }
        // Reopening also runs the migrations again, which must be a no-op.
        let store = SqliteStore::open(&path).await.expect("reopen");
        assert_eq!(store.app(&app.id).await.expect("read app"), Some(app));
    }

    #[tokio::test]
    async fn open_url_accepts_both_url_forms() {
        let dir = tempfile::TempDir::new().expect("temporary directory");
        let path = dir.path().join("by-url.db");
        let store = SqliteStore::open_url(&format!("sqlite://{}", path.display()))
            .await
            .expect("sqlite://ABSOLUTE opens");
        assert_eq!(store.path(), path.as_path());
        store.close().await;
        drop(store);
        let store = SqliteStore::open_url(&format!("sqlite:{}", path.display()))
            .await
            .expect("sqlite:ABSOLUTE opens");
        assert_eq!(store.path(), path.as_path());
    }

    #[test]
    fn url_paths_parse_relative_and_absolute() {
        assert_eq!(
            path_from_url("sqlite://fleethook.db"),
            Some(PathBuf::from("fleethook.db"))
        );
        assert_eq!(
            path_from_url("sqlite:fleethook.db"),
            Some(PathBuf::from("fleethook.db"))
        );
        assert_eq!(
            path_from_url("sqlite:///var/lib/f.db"),
            Some(PathBuf::from("/var/lib/f.db"))
        );
        assert_eq!(
            path_from_url("sqlite:/var/lib/f.db"),
            Some(PathBuf::from("/var/lib/f.db"))
        );
        assert_eq!(
            path_from_url("sqlite://data/f.db?mode=rwc"),
            Some(PathBuf::from("data/f.db"))
        );
        assert_eq!(path_from_url("sqlite::memory:"), None);
        assert_eq!(path_from_url("sqlite://"), None);
        assert_eq!(path_from_url("postgres://localhost/f"), None);
    }

    #[tokio::test]
    async fn attempt_stats_read_only_the_window_through_its_index() {
        let dir = tempfile::TempDir::new().expect("temporary directory");
        let store = SqliteStore::open(&dir.path().join("plan.db"))
            .await
            .expect("open");
        let rows = sqlx::query(
            "EXPLAIN QUERY PLAN SELECT COUNT(*) FROM attempts a JOIN deliveries d ON d.id = a.delivery_id \
             WHERE a.started_at >= 0 AND a.started_at < 60000 AND d.app_id = 'x'",
        )
        .fetch_all(&store.readers)
        .await
        .expect("explain");
        let detail: Vec<String> = rows.iter().map(|r| r.get::<String, _>("detail")).collect();
        assert!(
            detail.iter().any(|d| d.contains("attempts_by_time")),
            "the stats scan should use attempts_by_time: {detail:?}"
        );
    }

    #[tokio::test]
    async fn the_wal_is_checkpointed_beside_the_writer_not_in_its_commits() {
        let dir = tempfile::TempDir::new().expect("temporary directory");
        let store = SqliteStore::open(&dir.path().join("wal.db"))
            .await
            .expect("open");
        let auto: i64 = sqlx::query_scalar("PRAGMA wal_autocheckpoint")
            .fetch_one(&mut *store.writer.acquire().await.expect("writer"))
            .await
            .expect("pragma");
        assert_eq!(auto, 0, "no checkpoint inside a commit");
        let mut limits = vec![sqlx::query_scalar::<_, i64>("PRAGMA journal_size_limit")
            .fetch_one(&mut *store.writer.acquire().await.expect("writer"))
            .await
            .expect("pragma")];
        limits.push(
            sqlx::query_scalar("PRAGMA journal_size_limit")
                .fetch_one(&store.readers)
                .await
                .expect("pragma"),
        );
        {
            let round = store.round.lock().expect("round connection");
            for pragma in ["journal_size_limit", "wal_autocheckpoint"] {
                limits.push(
                    round
                        .query_row(&format!("PRAGMA {pragma}"), [], |row| row.get(0))
                        .expect("pragma"),
                );
            }
        }
        assert_eq!(
            limits,
            vec![WAL_SIZE_LIMIT, WAL_SIZE_LIMIT, WAL_SIZE_LIMIT, 0],
            "every connection cuts the log file back on restart; the round's checkpoints nothing"
        );
        conformance::apps_round_trip_and_duplicate_token_conflicts(Arc::new(
            SqliteStore::open_shared(&dir.path().join("wal.db"))
                .await
                .expect("second handle"),
        ))
        .await;
        // Both handles run their background checkpointer; while one of those is copying, this
        // checkpoint reports busy (-1 frames), so look again until one runs alone.
        let mut tries = 0;
        let (log, copied) = loop {
            let (log, copied) = crate::store::checkpointer::checkpoint(&store.readers)
                .await
                .expect("checkpoint");
            tries += 1;
            if log >= 0 || tries == 1_000 {
                break (log, copied);
            }
            tokio::task::yield_now().await;
        };
        assert!(log > 0, "the writes went to the log");
        assert_eq!(copied, log, "a checkpoint copies the whole log back");
    }

    #[tokio::test]
    async fn a_long_log_is_started_over_though_a_reader_is_always_in_it() {
        use crate::store::checkpointer::{checkpoint, checkpoint_and_restart};
        let dir = tempfile::TempDir::new().expect("temporary directory");
        let path = dir.path().join("restart.db");
        let store = SqliteStore::open(&path).await.expect("open");
        // Its checkpoints would race the ones below.
        store._checkpointer.stop();
        let app = |i: usize| App {
            id: format!("app-{i}"),
            name: format!("app {i}"),
            management_token: format!("amt_{i}"),
            created_at: 1_000,
        };
        for i in 0..20 {
            store.create_app(&app(i)).await.expect("create app");
        }
        // Under steady load some reader is always in the log.
        let mut reader = store.readers.acquire().await.expect("reader");
        sqlx::query("BEGIN")
            .execute(&mut *reader)
            .await
            .expect("begin");
        sqlx::query("SELECT COUNT(*) FROM apps")
            .fetch_one(&mut *reader)
            .await
            .expect("read");
        // A PASSIVE checkpoint copies the whole log back, yet the next write cannot start it
        // over while the reader is in it: the log only grows.
        let (log, copied) = checkpoint(&store.readers).await.expect("checkpoint");
        assert!(log > 0 && copied == log, "{copied} of {log} frames copied");
        store.create_app(&app(20)).await.expect("create app");
        let (grown, _) = checkpoint(&store.readers).await.expect("checkpoint");
        assert!(grown > log, "the log grew from {log} to {grown} frames");
        // A RESTART that cannot wait the reader out gives up, and writers carry on.
        let restarted =
            checkpoint_and_restart(&store.readers, 0, Duration::from_millis(10), BUSY_TIMEOUT)
                .await
                .expect("restart");
        assert!(!restarted, "the reader is still in the log");
        store.create_app(&app(30)).await.expect("create app");

        // The RESTART holds writers back until the reader has left.
        let pool = store.readers.clone();
        let restart = tokio::spawn(async move {
            checkpoint_and_restart(&pool, 0, Duration::from_secs(30), BUSY_TIMEOUT).await
        });
        let mut probe = SqliteConnectOptions::new()
            .filename(&path)
            .busy_timeout(Duration::ZERO)
            .connect()
            .await
            .expect("probe connection");
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            match probe.execute("BEGIN IMMEDIATE").await {
                Err(err) if is_busy(&err) => break,
                Err(err) => panic!("probe: {err}"),
                Ok(_) => {
                    probe.execute("ROLLBACK").await.expect("rollback");
                    assert!(
                        std::time::Instant::now() < deadline,
                        "the RESTART never held writers back"
                    );
                    tokio::task::yield_now().await;
                }
            }
        }
        sqlx::query("COMMIT")
            .execute(&mut *reader)
            .await
            .expect("end the read");
        assert!(
            restart.await.expect("join").expect("restart"),
            "the RESTART finished"
        );
        // The next write starts the log from its beginning, and cuts its file back to the
        // limit (here none, as the test's log is far below the store's).
        let wal = dir.path().join("restart.db-wal");
        let wal_bytes = || std::fs::metadata(&wal).expect("log file").len();
        let before = wal_bytes();
        store
            .writer
            .acquire()
            .await
            .expect("writer")
            .execute("PRAGMA journal_size_limit = 0")
            .await
            .expect("limit");
        store.create_app(&app(21)).await.expect("create app");
        assert!(
            wal_bytes() < before,
            "the log file is {} bytes after the restart, {before} before",
            wal_bytes()
        );
        let (after, copied) = checkpoint(&store.readers).await.expect("checkpoint");
        assert!(
            after < grown && copied == after,
            "the log holds {after} frames after the restart, {grown} before"
        );
    }

    #[tokio::test]
    async fn outbox_queries_use_the_partial_index() {
        let dir = tempfile::TempDir::new().expect("temporary directory");
        let store = SqliteStore::open(&dir.path().join("plan.db"))
            .await
            .expect("open");
        let plans = [
            "SELECT COUNT(*) FROM deliveries WHERE status = 'pending' AND next_attempt_at IS NOT NULL",
        ];
        for sql in plans {
            let rows = sqlx::query(&format!("EXPLAIN QUERY PLAN {sql}"))
                .fetch_all(&store.readers)
                .await
                .expect("explain");
            let detail: Vec<String> = rows.iter().map(|r| r.get::<String, _>("detail")).collect();
            assert!(
                detail.iter().any(|d| d.contains("deliveries_due")),
                "{sql} should use deliveries_due: {detail:?}"
            );
        }

        // A claim reads the outbox's index in due order and stops at its limit: no sort of
        // every due row first.
        for whole in [false, true] {
            let rows = sqlx::query(&format!(
                "EXPLAIN QUERY PLAN {}",
                round::select_due_sql(whole)
            ))
            .bind(0_i64)
            .bind(1_000_i64)
            .bind("[1, 2]")
            .bind("[]")
            .bind(100_i64)
            .fetch_all(&store.readers)
            .await
            .expect("explain the claim");
            let detail: Vec<String> = rows.iter().map(|r| r.get::<String, _>("detail")).collect();
            assert!(
                detail[0].contains("SEARCH d USING INDEX deliveries_due"),
                "the claim's outer loop is the outbox index: {detail:?}"
            );
            assert!(
                !detail.iter().any(|d| d.contains("TEMP B-TREE")),
                "the claim sorts nothing: {detail:?}"
            );
        }
    }

    /// An ingest group's writes (signal upserts, deliveries, bodies, vehicle links) of any
    /// count up to a power of two are one script text, so a group of any size reuses the
    /// prepared statements of the last group of its padded size.
    #[test]
    fn ingest_write_scripts_have_one_text_per_padded_size() {
        let signal = SignalValue {
            code: "tractionbattery-stateofcharge".into(),
            body: serde_json::json!({"unit": "percent", "value": 78}),
            oem_updated_at: None,
            retrieved_at: 1,
        };
        let vehicles: Vec<String> = (0..16).map(|i| format!("veh-{i}")).collect();
        let deliveries: Vec<NewDelivery> = vehicles
            .iter()
            .map(|vehicle| NewDelivery {
                id: format!("dlv-{vehicle}"),
                app_id: "app".into(),
                webhook_id: "wh".into(),
                event_id: format!("evt-{vehicle}"),
                purpose: DeliveryPurpose::Event,
                target_uri: "http://127.0.0.1/hook".into(),
                body: "{}".into(),
                event_type: "VEHICLE_STATE".into(),
                vehicle_ids: vec![vehicle.clone()],
                next_attempt_at: Some(1),
                created_at: 1,
            })
            .collect();
        let sql = |n: usize| {
            let writes: Vec<SignalWrite<'_>> = vehicles[..n]
                .iter()
                .map(|v| (v.as_str(), &signal, 1))
                .collect();
            let signals = SignalRows::new(&writes).expect("bodies encode");
            let rows = DeliveryRows {
                rows: (1..)
                    .zip(&deliveries[..n])
                    .map(|(seq, d)| (seq, d, to_json(&d.vehicle_ids).expect("ids encode")))
                    .collect(),
                links: deliveries[..n]
                    .iter()
                    .map(|d| (d.id.as_str(), d.vehicle_ids[0].as_str()))
                    .collect(),
                ids: to_json(&deliveries[..n].iter().map(|d| &d.id).collect::<Vec<_>>())
                    .expect("ids encode"),
            };
            let mut script = QueryBuilder::new("");
            signals.push_upserts(&mut script);
            rows.push_inserts(&mut script);
            script.sql().to_string()
        };
        assert_eq!(sql(5), sql(8));
        assert_eq!(sql(3), sql(4));
        assert_ne!(sql(8), sql(9));
        // A later write of one signal replaces an earlier one in the same group.
        let twice = [
            ("veh-0", &signal, 1),
            ("veh-0", &signal, 2),
            ("veh-1", &signal, 3),
        ];
        let kept = SignalRows::new(&twice).expect("bodies encode");
        let times: Vec<Millis> = kept.rows.iter().map(|((_, _, at), _)| *at).collect();
        assert_eq!(times, vec![2, 3]);
    }

    /// Completions of any count up to a power of two are written by statements of one text,
    /// so the driver prepares each padded size once (real rows and padding are bound alike).
    #[test]
    fn round_statements_have_one_text_per_padded_size() {
        for sql in [round::attempts_insert_sql, round::outcomes_update_sql] {
            assert_eq!(sql(5), sql(8));
            assert_eq!(sql(1), sql(1));
            assert_ne!(sql(8), sql(9));
            assert_eq!(sql(9), sql(16));
        }
    }
}
