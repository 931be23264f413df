//! The one write connection of a SQLite store, handed from writer to writer by an async mutex.
//!
//! A sqlx pool of one connection did the same job at a price paid on every write: each release
//! spawned a task that pinged the connection's thread before the connection went back, and a
//! custom `BEGIN IMMEDIATE` cost a second round trip to check that it began. The outbox's
//! claims and completions take turns on this connection, so every step of a hand-over was
//! time the connection sat idle: in `fleethook bench throughput` a claim of about 120
//! deliveries waited 7.7 ms for a connection that was busy 3 ms of it. Unlocking a mutex
//! hands the connection to the next waiter at once.
//!
//! A transaction left open (its future dropped before `commit`, or a failed `COMMIT`) is
//! rolled back by the next user before anything else runs on the connection.

use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::query::Query;
use sqlx::sqlite::{SqliteArguments, SqliteConnectOptions, SqliteConnection};
use sqlx::Sqlite;
use sqlx::{ConnectOptions, Connection, Executor};
use tokio::sync::{Mutex, OwnedMutexGuard};

/// The connection and what the last user left behind.
struct Slot {
    /// `None` once the store is closed.
    conn: Option<SqliteConnection>,
    /// A transaction began and was neither committed nor rolled back.
    open_tx: bool,
}

/// The store's write connection.
#[derive(Clone)]
pub(crate) struct Writer {
    slot: Arc<Mutex<Slot>>,
    /// Nanoseconds the connection has been held, in all (see [`Writer::busy`]).
    held_ns: Arc<AtomicU64>,
}

impl Writer {
    /// Connects with `options`.
    pub(crate) async fn connect(options: &SqliteConnectOptions) -> Result<Writer, sqlx::Error> {
        let conn = options.connect().await?;
        Ok(Writer {
            slot: Arc::new(Mutex::new(Slot {
                conn: Some(conn),
                open_tx: false,
            })),
            held_ns: Arc::new(AtomicU64::new(0)),
        })
    }

    /// How long the connection has been held, in all: from each hand-over to its user until
    /// the user let go, waits on the connection's thread included.
    pub(crate) fn busy(&self) -> Duration {
        Duration::from_nanos(self.held_ns.load(Ordering::Relaxed))
    }

    /// The connection, for statements that are a transaction on their own.
    pub(crate) async fn acquire(&self) -> Result<WriteConn, sqlx::Error> {
        let mut slot = self.slot.clone().lock_owned().await;
        let since = Instant::now();
        if slot.conn.is_none() {
            return Err(sqlx::Error::PoolClosed);
        }
        if slot.open_tx {
            // What its last user left undone is undone before anyone builds on it.
            slot.open_tx = false;
            let conn = slot.conn.as_mut().expect("checked above");
            if let Err(err) = conn.execute("ROLLBACK").await {
                // "no transaction is active": the failed COMMIT had ended it after all.
                tracing::debug!(%err, "rolling back a transaction left open");
            }
        }
        Ok(WriteConn {
            slot,
            since,
            held_ns: self.held_ns.clone(),
        })
    }

    /// Starts a transaction that holds SQLite's write lock from its first statement, so what
    /// it reads cannot change before it writes (another process may write the same file).
    pub(crate) async fn begin(&self) -> Result<WriteTx, sqlx::Error> {
        let mut conn = self.acquire().await?;
        // Marked first: a caller dropped during BEGIN must not leave it unnoticed.
        conn.slot.open_tx = true;
        conn.execute("BEGIN IMMEDIATE").await?;
        Ok(WriteTx(conn))
    }

    /// Closes the connection, after the current user is done with it.
    pub(crate) async fn close(&self) {
        let conn = self.slot.lock().await.conn.take();
        if let Some(conn) = conn {
            if let Err(err) = conn.close().await {
                tracing::debug!(%err, "closing the write connection");
            }
        }
    }
}

/// The write connection, held until dropped.
pub(crate) struct WriteConn {
    slot: OwnedMutexGuard<Slot>,
    /// When it was handed over, and where the time it is held is added up.
    since: Instant,
    held_ns: Arc<AtomicU64>,
}

impl Drop for WriteConn {
    fn drop(&mut self) {
        let held = self.since.elapsed().as_nanos();
        self.held_ns
            .fetch_add(u64::try_from(held).unwrap_or(u64::MAX), Ordering::Relaxed);
    }
}

impl Deref for WriteConn {
    type Target = SqliteConnection;

    fn deref(&self) -> &SqliteConnection {
        self.slot
            .conn
            .as_ref()
            .expect("a WriteConn holds an open connection")
    }
}

impl DerefMut for WriteConn {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        self.slot
            .conn
            .as_mut()
            .expect("a WriteConn holds an open connection")
    }
}

/// A write transaction; rolled back unless committed.
pub(crate) struct WriteTx(WriteConn);

impl WriteTx {
    /// Commits. On failure the transaction stays open until the next user rolls it back. The
    /// connection stays held until the returned value is dropped: a caller can record what it
    /// committed before any other writer runs.
    pub(crate) async fn commit(mut self) -> Result<WriteConn, sqlx::Error> {
        self.0.execute("COMMIT").await?;
        self.0.slot.open_tx = false;
        Ok(self.0)
    }

    /// Runs `script`, statements that end with `COMMIT`, in one round trip. On failure the
    /// transaction stays open until the next user rolls it back. The connection stays held as
    /// after [`WriteTx::commit`].
    pub(crate) async fn commit_script<'q>(
        mut self,
        script: Query<'q, Sqlite, SqliteArguments<'q>>,
    ) -> Result<WriteConn, sqlx::Error> {
        script.execute(&mut *self.0).await?;
        self.0.slot.open_tx = false;
        Ok(self.0)
    }

    /// Rolls back now.
    pub(crate) async fn rollback(mut self) -> Result<(), sqlx::Error> {
        self.0.execute("ROLLBACK").await?;
        self.0.slot.open_tx = false;
        Ok(())
    }
}

impl Deref for WriteTx {
    type Target = SqliteConnection;

    fn deref(&self) -> &SqliteConnection {
        &self.0
    }
}

impl DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        &mut self.0
    }
}

#[cfg(test)]
mod tests {
    use sqlx::sqlite::SqliteConnectOptions;
    use sqlx::Executor;

    use super::Writer;

    async fn writer(dir: &tempfile::TempDir) -> Writer {
        let options = SqliteConnectOptions::new()
            .filename(dir.path().join("w.db"))
            .create_if_missing(true);
        let writer = Writer::connect(&options).await.expect("connect");
        writer
            .acquire()
            .await
            .expect("acquire")
            .execute("CREATE TABLE t (v INTEGER NOT NULL)")
            .await
            .expect("create");
        writer
    }

    async fn count(writer: &Writer) -> i64 {
        sqlx::query_scalar("SELECT COUNT(*) FROM t")
            .fetch_one(&mut *writer.acquire().await.expect("acquire"))
            .await
            .expect("count")
    }

    #[tokio::test]
    async fn committed_writes_stay_and_dropped_transactions_roll_back() {
        let dir = tempfile::TempDir::new().expect("temporary directory");
        let writer = writer(&dir).await;

        let mut tx = writer.begin().await.expect("begin");
        tx.execute("INSERT INTO t VALUES (1)")
            .await
            .expect("insert");
        tx.commit().await.expect("commit");
        assert_eq!(count(&writer).await, 1);

        // Dropped half-way, as a cancelled request drops its future.
        let mut tx = writer.begin().await.expect("begin");
        tx.execute("INSERT INTO t VALUES (2)")
            .await
            .expect("insert");
        drop(tx);
        assert_eq!(
            count(&writer).await,
            1,
            "the dropped transaction left nothing"
        );

        // A failed statement, then the caller gives up.
        let mut tx = writer.begin().await.expect("begin");
        tx.execute("INSERT INTO t VALUES (3)")
            .await
            .expect("insert");
        assert!(tx.execute("INSERT INTO t VALUES (NULL)").await.is_err());
        drop(tx);
        assert_eq!(count(&writer).await, 1);

        let tx = writer.begin().await.expect("a new transaction begins");
        tx.rollback().await.expect("rollback");
    }

    #[tokio::test]
    async fn writers_take_turns() {
        let dir = tempfile::TempDir::new().expect("temporary directory");
        let writer = writer(&dir).await;
        let tasks: Vec<_> = (0..8)
            .map(|i| {
                let writer = writer.clone();
                tokio::spawn(async move {
                    let mut tx = writer.begin().await.expect("begin");
                    tx.execute(format!("INSERT INTO t VALUES ({i})").as_str())
                        .await
                        .expect("insert");
                    tokio::task::yield_now().await;
                    tx.commit().await.expect("commit");
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("writer task");
        }
        assert_eq!(count(&writer).await, 8);
    }

    #[tokio::test]
    async fn a_closed_writer_refuses_work() {
        let dir = tempfile::TempDir::new().expect("temporary directory");
        let writer = writer(&dir).await;
        writer.close().await;
        assert!(matches!(
            writer.acquire().await.err(),
            Some(sqlx::Error::PoolClosed)
        ));
        assert!(writer.begin().await.is_err());
    }
}
