//! What every scenario sets up the same way: the real server in-process on a fresh temporary
//! SQLite file (or `--database-url`) with the default application, a local keep-alive axum
//! receiver, management API calls, and the peak memory of this process.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use fleethook_wire::signing::hash_challenge;
use serde::Serialize;
use serde_json::{json, Value};
use tokio::task::JoinHandle;

use super::{report_dir, write_report, BenchDatabase, MachineFacts};
use crate::clock::SharedClock;
use crate::delivery::DispatcherSettings;
use crate::model::App;
use crate::server::{ensure_default_app, open_store, RunningServer, ServerOptions};

/// The real server of a scenario, running in this process on 127.0.0.1, with the default
/// application, and the temporary database it made (removed when stopped).
pub struct BenchServer {
    pub server: RunningServer,
    pub app: App,
    database: BenchDatabase,
}

impl BenchServer {
    /// Opens the database (`None`: a fresh temporary SQLite file), makes sure the default
    /// application exists, and starts the server with loopback callbacks allowed and the
    /// dispatcher and trigger loops in the background.
    pub async fn start(
        database_url: Option<&str>,
        clock: SharedClock,
        dispatcher: DispatcherSettings,
    ) -> anyhow::Result<BenchServer> {
        let database = BenchDatabase::prepare(database_url).await?;
        let store = open_store(database.url()).await?;
        let (app, _) = ensure_default_app(&store, None, clock.now_ms()).await?;
        let server = RunningServer::start(
            store,
            clock,
            ServerOptions {
                listen: "127.0.0.1:0".into(),
                allow_private: true,
                dispatcher,
                background_dispatcher: true,
            },
        )
        .await?;
        Ok(BenchServer {
            server,
            app,
            database,
        })
    }

    /// Stops the server, then removes the temporary database.
    pub async fn stop(self) {
        self.server.stop().await;
        drop(self.database);
    }
}

/// A local keep-alive HTTP receiver on 127.0.0.1 serving a scenario's router, whose callback
/// route is `POST /hook`.
pub struct Receiver {
    /// The callback URI: `http://127.0.0.1:PORT/hook`.
    pub url: String,
    task: JoinHandle<()>,
}

impl Receiver {
    /// Binds a free port and serves `router` on it.
    pub async fn start(router: Router) -> anyhow::Result<Receiver> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("cannot bind the receiver")?;
        let url = format!("http://{}/hook", listener.local_addr()?);
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Ok(Receiver { url, task })
    }

    /// Stops serving.
    pub fn stop(self) {
        self.task.abort();
    }
}

/// The receiver's answer to a verification challenge: `{"challenge": HMAC(AMT, challenge)}`.
pub fn answer_challenge(amt: &str, challenge: &str) -> Response {
    Json(json!({ "challenge": hash_challenge(amt, challenge) })).into_response()
}

/// An HTTP client for the management API.
pub fn api_client() -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .context("cannot build the HTTP client")
}

/// One management API call; fails unless it answers 2xx.
pub async fn api_call(
    http: &reqwest::Client,
    amt: &str,
    method: reqwest::Method,
    url: String,
    body: Option<Value>,
) -> anyhow::Result<Value> {
    let mut request = http.request(method, &url).bearer_auth(amt);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request
        .send()
        .await
        .with_context(|| format!("{url} failed"))?;
    let status = response.status();
    let value: Value = response.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        bail!("{url} answered {status}: {value}");
    }
    Ok(value)
}

/// Writes a scenario's report to `target/bench/NAME.json`: the report's fields, then the
/// scenario's name, whether it was `--quick`, its configuration and the machine; prints where.
pub fn write_scenario_report(
    name: &str,
    quick: bool,
    report: &impl Serialize,
    config: &impl Serialize,
    machine: &MachineFacts,
) -> anyhow::Result<()> {
    let mut json = serde_json::to_value(report).context("cannot serialise the report")?;
    if let Value::Object(map) = &mut json {
        map.insert("scenario".into(), json!(name));
        map.insert("quick".into(), json!(quick));
        map.insert(
            "config".into(),
            serde_json::to_value(config).context("cannot serialise the config")?,
        );
        map.insert(
            "machine".into(),
            serde_json::to_value(machine).context("cannot serialise the machine facts")?,
        );
    }
    let path = write_report(&report_dir(), name, &json)?;
    println!();
    println!("  written to {}", path.display());
    Ok(())
}

/// A duration in milliseconds.
pub fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// Peak and current resident memory of this process (`VmHWM`, `VmRSS` of
/// `/proc/self/status`), in bytes; `None` where there is no such file.
pub fn memory_of_self() -> (Option<u64>, Option<u64>) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    (kb_field(&status, "VmHWM:"), kb_field(&status, "VmRSS:"))
}

/// The value of a `Name:   123 kB` line of a `/proc` file, in bytes.
pub fn kb_field(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .map(|kb| kb * 1024)
}

/// Resets this process's peak resident memory (`VmHWM`) to its current size by writing `5`
/// to `/proc/self/clear_refs`; `false` where that is not permitted.
pub fn reset_peak_memory() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// A temporary folder for a scenario's SQLite file, removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    /// The folder's path.
    pub fn path(&self) -> &std::path::Path {
        &self.0
    }

    /// A fresh folder under the system's temporary directory.
    pub fn new() -> anyhow::Result<Self> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let dir =
            std::env::temp_dir().join(format!("fleethook-bench-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        Ok(TempDir(dir))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
