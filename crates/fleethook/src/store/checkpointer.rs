//! Moves SQLite's write-ahead log back into the database file off the writer's path.
//!
//! SQLite's automatic checkpoint runs inside the commit that crosses the threshold, so every
//! thousand pages one unlucky transaction (an ingest group, say) waits for the copy and its
//! fsync: that was the whole tail of change-to-delivery latency (p99 94 ms with it, 2 ms
//! without, in `fleethook bench change-latency`). The store turns the automatic checkpoint
//! off and this task runs a PASSIVE checkpoint every second on a reader connection instead.
//! In WAL mode a checkpoint does not hold the write lock, so writers carry on meanwhile.
//!
//! The log starts again from its beginning only at a write that finds it wholly copied back
//! and no reader in it, and under steady load some reader always is: in `fleethook bench
//! throughput` the log grew to 1.7 GB while every PASSIVE checkpoint copied it completely.
//! So when the log has grown past [`RESTART_AFTER_FRAMES`], the PASSIVE checkpoint is followed
//! by a RESTART one: it copies the few frames written since and waits for the readers still
//! in the log to finish (new readers read the database file; new writers wait), so the next
//! write starts the log over. The pause is short, as the PASSIVE copy went before it, and
//! bounded: a RESTART that waits longer than [`RESTART_WAIT`] gives up until the next second.
//! A writer that found it waiting sleeps in SQLite's busy handler (1, 2, 5, 10, 15 ms…), so
//! it may stall for up to about 35 ms.

use std::time::Duration;

use sqlx::{Executor, Row, SqlitePool};
use tokio::task::JoinHandle;

/// How often the log is copied back.
const EVERY: Duration = Duration::from_secs(1);

/// A log longer than this (64 MiB of 4 KiB pages) is started over after its checkpoint.
pub const RESTART_AFTER_FRAMES: i64 = 16_384;

/// How long a RESTART checkpoint waits for the readers in the log (holding writers back).
pub const RESTART_WAIT: Duration = Duration::from_millis(20);

/// The running checkpointer; stops when dropped (with the store).
pub struct Checkpointer(JoinHandle<()>);

impl Checkpointer {
    /// Starts checkpointing the database of `pool` (a pool that stays open as long as the
    /// store; the task ends when it is closed).
    /// `busy_timeout` is the one the pool's connections were opened with.
    pub fn start(pool: SqlitePool, busy_timeout: Duration) -> Checkpointer {
        Checkpointer(tokio::spawn(async move {
            let mut tick = tokio::time::interval(EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if pool.is_closed() {
                    break;
                }
                let done =
                    checkpoint_and_restart(&pool, RESTART_AFTER_FRAMES, RESTART_WAIT, busy_timeout)
                        .await;
                if let Err(err) = done {
                    if pool.is_closed() {
                        break;
                    }
                    tracing::warn!(%err, "WAL checkpoint failed; retrying in a second");
                }
            }
        }))
    }

    /// Stops the task, so a test decides when the log is checkpointed.
    #[cfg(test)]
    pub fn stop(&self) {
        self.0.abort();
    }
}

/// A PASSIVE checkpoint, then a RESTART one when the log holds more than `restart_after`
/// frames, waiting at most `wait` for the readers in it; returns whether the log was set to
/// start over. `busy_timeout` is the connection's usual one, put back afterwards.
pub async fn checkpoint_and_restart(
    pool: &SqlitePool,
    restart_after: i64,
    wait: Duration,
    busy_timeout: Duration,
) -> Result<bool, sqlx::Error> {
    let (log, _) = checkpoint(pool).await?;
    if log <= restart_after {
        return Ok(false);
    }
    let mut conn = pool.acquire().await?;
    conn.execute(format!("PRAGMA busy_timeout = {}", wait.as_millis()).as_str())
        .await?;
    let restarted = sqlx::query("PRAGMA wal_checkpoint(RESTART)")
        .fetch_one(&mut *conn)
        .await
        .and_then(|row| row.try_get::<i64, _>(0));
    let put_back = conn
        .execute(format!("PRAGMA busy_timeout = {}", busy_timeout.as_millis()).as_str())
        .await;
    if put_back.is_err() {
        // A reader that gives up on a busy database after `wait` would fail requests.
        conn.close_on_drop();
    }
    // The first column is 1 when the RESTART gave up waiting.
    Ok(restarted? == 0)
}

/// One PASSIVE checkpoint: returns the frames in the log and how many of them are now in the
/// database file (equal when the log was fully copied back).
pub async fn checkpoint(pool: &SqlitePool) -> Result<(i64, i64), sqlx::Error> {
    let row = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
        .fetch_one(pool)
        .await?;
    Ok((row.try_get(1)?, row.try_get(2)?))
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.0.abort();
    }
}
