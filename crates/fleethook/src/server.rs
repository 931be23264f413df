//! Puts the pieces together: opens the store, makes sure the default application exists,
//! starts the dispatcher and serves the API. `main` and the tests start a server the same way,
//! the tests on port 0 with a manual clock.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::clock::SharedClock;
use crate::delivery::dispatcher::{Dispatcher, DispatcherSettings};
use crate::delivery::http::DeliveryClient;
use crate::ingest::IngestQueue;
use crate::metrics::Metrics;
use crate::model::App;
use crate::store::postgres::PgStore;
use crate::store::sqlite::SqliteStore;
use crate::store::{SharedStore, StoreError};
use crate::triggers::Triggers;

/// What every request handler can reach.
pub struct AppState {
    pub store: SharedStore,
    pub clock: SharedClock,
    pub dispatcher: Arc<Dispatcher>,
    pub triggers: Arc<Triggers>,
    pub metrics: Arc<Metrics>,
    /// The queue every ingest goes through (group commit; see `ingest`).
    pub ingest: IngestQueue,
    /// `FLEETHOOK_ALLOW_PRIVATE_CALLBACKS`: callbacks on loopback and private ranges.
    pub allow_private: bool,
}

/// Shared handle to the state.
pub type SharedState = Arc<AppState>;

/// Opens the store named by a `FLEETHOOK_DATABASE_URL` for serving: a SQLite file is then
/// held by this process alone (its `.lock` file); a Postgres database is shared with any other
/// nodes serving it.
pub async fn open_store(url: &str) -> anyhow::Result<SharedStore> {
    open(url, true).await
}

/// Opens the store for a short administrative change beside a running server
/// (`fleethook apps create`): SQLite's own locking keeps the writes safe; Postgres is shared
/// anyway.
pub async fn open_store_shared(url: &str) -> anyhow::Result<SharedStore> {
    open(url, false).await
}

async fn open(url: &str, exclusive: bool) -> anyhow::Result<SharedStore> {
    if url.starts_with("sqlite:") {
        let store = if exclusive {
            SqliteStore::open_url(url).await?
        } else {
            SqliteStore::open_url_shared(url).await?
        };
        Ok(Arc::new(store))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let store = PgStore::open(url).await.with_context(|| {
            format!("cannot open the Postgres database {}", redact_password(url))
        })?;
        tracing::info!(node = store.node(), "serving a shared Postgres database");
        Ok(Arc::new(store))
    } else {
        anyhow::bail!("FLEETHOOK_DATABASE_URL must start with sqlite:// or postgres://, got {url}")
    }
}

/// The URL with its password, if any, replaced by `***`, for messages.
fn redact_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    match authority.rsplit_once('@') {
        Some((user_info, host)) if user_info.contains(':') => {
            let user = user_info.split(':').next().unwrap_or("");
            let tail = &rest[authority.len()..];
            format!("{scheme}://{user}:***@{host}{tail}")
        }
        _ => url.to_string(),
    }
}

/// The name of the application `serve` creates on first start.
pub const DEFAULT_APP_NAME: &str = "default";

/// Makes sure the default application exists; returns it and whether it was created now (its
/// token is then printed once). A configured token replaces the stored one.
pub async fn ensure_default_app(
    store: &SharedStore,
    configured_token: Option<&str>,
    now: i64,
) -> anyhow::Result<(App, bool)> {
    let apps = store.list_apps().await?;
    if let Some(app) = apps.into_iter().find(|a| a.name == DEFAULT_APP_NAME) {
        if let Some(token) = configured_token {
            if token != app.management_token {
                store.set_app_token(&app.id, token).await?;
                let app = App {
                    management_token: token.to_string(),
                    ..app
                };
                return Ok((app, false));
            }
        }
        return Ok((app, false));
    }
    let app = App {
        id: crate::ids::new_id(),
        name: DEFAULT_APP_NAME.to_string(),
        management_token: configured_token
            .map(str::to_string)
            .unwrap_or_else(|| crate::ids::new_token("amt_")),
        created_at: now,
    };
    match store.create_app(&app).await {
        Ok(()) => Ok((app, true)),
        // Another node sharing the database, started at the same moment with the same
        // configured token, made it first.
        Err(StoreError::Conflict(_)) if configured_token.is_some() => {
            let made = store
                .app_by_token(&app.management_token)
                .await?
                .filter(|made| made.name == DEFAULT_APP_NAME)
                .context("the default application's token is taken by another application")?;
            Ok((made, false))
        }
        Err(err) => Err(err.into()),
    }
}

/// How to start a server.
pub struct ServerOptions {
    pub listen: String,
    pub allow_private: bool,
    pub dispatcher: DispatcherSettings,
    /// Run the trigger and dispatcher loops in the background (tests that step time by hand
    /// with `Triggers::run_due` and `Dispatcher::run_due` turn it off).
    pub background_dispatcher: bool,
}

/// A running server: its address, its state, and the means to stop it.
pub struct RunningServer {
    pub addr: SocketAddr,
    pub state: SharedState,
    shutdown: watch::Sender<bool>,
    http: JoinHandle<()>,
    dispatcher: JoinHandle<()>,
}

/// How long [`RunningServer::stop`] waits for the server's tasks to drop its state.
const STOP_RELEASE_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

impl RunningServer {
    /// Binds, starts the dispatcher and the HTTP server, and returns once both run.
    pub async fn start(
        store: SharedStore,
        clock: SharedClock,
        options: ServerOptions,
    ) -> anyhow::Result<Self> {
        // Leases left by this node's previous life: every lease on a single-node store, none
        // of another live node's on a shared one (theirs expire if that node died).
        store.release_all_leases().await?;
        let metrics = Arc::new(Metrics::new());
        let settings = DispatcherSettings {
            allow_private: options.allow_private,
            ..options.dispatcher
        };
        let client = DeliveryClient::new(options.allow_private);
        let dispatcher = Dispatcher::new(
            store.clone(),
            clock.clone(),
            client,
            metrics.clone(),
            settings,
        );
        let triggers = Triggers::new(store.clone(), clock.clone(), dispatcher.clone());
        let ingest = IngestQueue::start(&store);
        let state = Arc::new(AppState {
            ingest,
            store,
            clock,
            dispatcher: dispatcher.clone(),
            triggers: triggers.clone(),
            metrics,
            allow_private: options.allow_private,
        });
        let listener = TcpListener::bind(&options.listen)
            .await
            .with_context(|| format!("cannot listen on {}", options.listen))?;
        let addr = listener.local_addr()?;
        let (shutdown, shutdown_rx) = watch::channel(false);
        let dispatcher_task = if options.background_dispatcher {
            let triggers_shutdown = shutdown_rx.clone();
            let dispatcher_shutdown = shutdown_rx.clone();
            tokio::spawn(async move {
                tokio::join!(
                    triggers.run(triggers_shutdown),
                    dispatcher.run(dispatcher_shutdown)
                );
            })
        } else {
            tokio::spawn(async {})
        };
        let router = crate::api::router(state.clone());
        let mut http_shutdown = shutdown_rx;
        let http = tokio::spawn(async move {
            let serve = axum::serve(listener, router).with_graceful_shutdown(async move {
                let _ = http_shutdown.wait_for(|stop| *stop).await;
            });
            if let Err(err) = serve.await {
                tracing::error!(%err, "HTTP server stopped");
            }
        });
        Ok(RunningServer {
            addr,
            state,
            shutdown,
            http,
            dispatcher: dispatcher_task,
        })
    }

    /// A receiver that turns true when the server stops, for tasks that live as long as it.
    pub fn shutdown_receiver(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    /// The base URL, e.g. `http://127.0.0.1:8080`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting requests and stops the dispatcher. Returns once the server's tasks
    /// have let go of its state (within a second), so that a SQLite store is closed and its
    /// file unlocked for the next server, unless the caller holds the store or the state.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        let _ = self.http.await;
        let _ = self.dispatcher.await;
        // axum's serve returns when every connection task has dropped its shutdown receiver,
        // which each does just before it drops its copy of the router, and with it the state:
        // a restart on the same SQLite file could find the lock still held.
        let deadline = tokio::time::Instant::now() + STOP_RELEASE_WAIT;
        while Arc::strong_count(&self.state) > 1 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
    }

    /// Waits until the HTTP server ends (for `serve`, which runs until a signal).
    pub async fn wait(self) {
        let _ = self.http.await;
        let _ = self.shutdown.send(true);
        let _ = self.dispatcher.await;
    }
}

#[cfg(test)]
mod tests {
    use super::redact_password;

    #[test]
    fn passwords_never_reach_messages() {
        assert_eq!(
            redact_password("postgres://fh:s3cret@db:5432/fleet?sslmode=require"),
            "postgres://fh:***@db:5432/fleet?sslmode=require"
        );
        assert_eq!(
            redact_password("postgres://postgres@127.0.0.1/postgres"),
            "postgres://postgres@127.0.0.1/postgres"
        );
    }
}
