//! Moves SQLite's write-ahead log back into the database file off the writer's path.
//!
//! SQLite's automatic checkpoint runs inside the commit that crosses the threshold, so every
//! thousand pages one unlucky transaction (an ingest group, say) waits for the copy and its
//! fsync: that was the whole tail of change-to-delivery latency (p99 94 ms with it, 2 ms
//! without, in `fleethook bench change-latency`). The store turns the automatic checkpoint
//! off and this task runs a PASSIVE checkpoint every second on a reader connection instead.
//! In WAL mode a checkpoint does not hold the write lock, so writers carry on meanwhile, and
//! the log restarts from its beginning at the next write after a complete checkpoint.

use std::time::Duration;

use sqlx::{Row, SqlitePool};
use tokio::task::JoinHandle;

/// How often the log is copied back.
const EVERY: Duration = Duration::from_secs(1);

/// The running checkpointer; stops when dropped (with the store).
pub struct Checkpointer(JoinHandle<()>);

impl Checkpointer {
    /// Starts checkpointing the database of `pool` (a pool that stays open as long as the
    /// store; the task ends when it is closed).
    pub fn start(pool: SqlitePool) -> Checkpointer {
        Checkpointer(tokio::spawn(async move {
            let mut tick = tokio::time::interval(EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if pool.is_closed() {
                    break;
                }
                if let Err(err) = checkpoint(&pool).await {
                    if pool.is_closed() {
                        break;
                    }
                    tracing::warn!(%err, "WAL checkpoint failed; retrying in a second");
                }
            }
        }))
    }
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
