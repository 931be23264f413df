//! Shared test harness: a fleethook server in-process on 127.0.0.1:0 with a manual clock and a
//! real SQLite file or a fresh Postgres database, a real HTTP receiver that records what it gets, a small API client, and
//! signature checks written independently of fleethook's own signing code.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use base64::Engine;
use fleethook::clock::{Clock, ManualClock, SharedClock};
use fleethook::server::{ensure_default_app, open_store, RunningServer, ServerOptions};
use fleethook::store::postgres::scratch::ScratchDatabase;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use tokio::sync::mpsc;

/// 2024-09-20T15:45:00Z: a fixed start so tests read the same times every run.
pub const T0: i64 = 1_726_847_100_000;

/// How long a test waits for something that should happen at once before it fails.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// Which store a test server runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    /// A fresh database on the test server (`FLEETHOOK_TEST_POSTGRES_URL`), dropped after.
    Postgres,
}

/// Runs each named `async fn(Backend)` as two tests, `sqlite::NAME` and `postgres::NAME`, so
/// one body proves a behaviour on both stores.
#[macro_export]
macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::common::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::common::Backend::Postgres).await
                }
            )*
        }
    };
}

/// A fresh database of `backend`: its URL, and what keeps it alive.
pub struct TestDatabase {
    pub url: String,
    pub dir: tempfile::TempDir,
    /// The Postgres database, dropped with this value.
    pub scratch: Option<ScratchDatabase>,
}

impl TestDatabase {
    /// A new SQLite file, or a new Postgres database; a Postgres server that does not answer
    /// fails the test with what to do about it.
    pub async fn create(backend: Backend) -> TestDatabase {
        let dir = tempfile::tempdir().unwrap();
        match backend {
            Backend::Sqlite => TestDatabase {
                url: format!("sqlite://{}", dir.path().join("fleethook.db").display()),
                dir,
                scratch: None,
            },
            Backend::Postgres => {
                let scratch = ScratchDatabase::create()
                    .await
                    .unwrap_or_else(|err| panic!("{err:#}"));
                TestDatabase {
                    url: scratch.url().to_string(),
                    dir,
                    scratch: Some(scratch),
                }
            }
        }
    }
}

/// A server under test.
pub struct TestServer {
    pub server: RunningServer,
    pub clock: Arc<ManualClock>,
    pub token: String,
    pub http: reqwest::Client,
    /// Declared last: the database outlives the server.
    pub database: TestDatabase,
}

impl TestServer {
    /// A server that allows callbacks on 127.0.0.1 (the receiver lives there).
    pub async fn start() -> TestServer {
        Self::start_with(true).await
    }

    /// A server whose dispatcher runs in the background, as in production.
    pub async fn start_live() -> TestServer {
        Self::start_full(true, true).await
    }

    pub async fn start_with(allow_private: bool) -> TestServer {
        Self::start_full(allow_private, false).await
    }

    /// [`TestServer::start`] on the given store.
    pub async fn start_on(backend: Backend) -> TestServer {
        Self::start_full_on(backend, true, false).await
    }

    /// [`TestServer::start_live`] on the given store.
    pub async fn start_live_on(backend: Backend) -> TestServer {
        Self::start_full_on(backend, true, true).await
    }

    /// Fires the triggers due at the manual clock's time, sends everything due, and waits
    /// until it is recorded; returns the attempts made.
    pub async fn run_due(&self) -> usize {
        self.server.state.triggers.run_due().await.unwrap();
        self.server.state.dispatcher.run_due().await
    }

    /// Moves the manual clock to `at` (epoch ms) and delivers what is due then.
    pub async fn advance_to(&self, at: i64) -> usize {
        self.clock.set(at);
        self.run_due().await
    }

    async fn start_full(allow_private: bool, background_dispatcher: bool) -> TestServer {
        Self::start_full_on(Backend::Sqlite, allow_private, background_dispatcher).await
    }

    async fn start_full_on(
        backend: Backend,
        allow_private: bool,
        background_dispatcher: bool,
    ) -> TestServer {
        let database = TestDatabase::create(backend).await;
        let store = open_store(&database.url).await.unwrap();
        let clock = ManualClock::new(T0);
        let shared: SharedClock = clock.clone();
        let (app, _) = ensure_default_app(&store, None, clock.now_ms())
            .await
            .unwrap();
        let server = RunningServer::start(
            store,
            shared,
            ServerOptions {
                listen: "127.0.0.1:0".into(),
                allow_private,
                dispatcher: Default::default(),
                background_dispatcher,
            },
        )
        .await
        .unwrap();
        TestServer {
            server,
            clock,
            token: app.management_token,
            http: reqwest::Client::new(),
            database,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.server.url(), path)
    }

    /// Stops the server (as a process that goes down would) and starts a new one on the same
    /// database and clock.
    pub async fn restart(self) -> TestServer {
        let TestServer {
            server,
            clock,
            token,
            http,
            database,
        } = self;
        server.stop().await;
        let store = open_store(&database.url).await.unwrap();
        let shared: SharedClock = clock.clone();
        let server = RunningServer::start(
            store,
            shared,
            ServerOptions {
                listen: "127.0.0.1:0".into(),
                allow_private: true,
                dispatcher: Default::default(),
                background_dispatcher: false,
            },
        )
        .await
        .unwrap();
        TestServer {
            server,
            clock,
            token,
            http,
            database,
        }
    }

    /// Ingests signals for a vehicle (a JSON array of `{code, body}`).
    pub async fn ingest(&self, vehicle_id: &str, signals: Value) {
        let (status, body) = self
            .call(
                "POST",
                &format!("/api/v1/vehicles/{vehicle_id}/signals"),
                Some(json!({ "signals": signals })),
            )
            .await;
        assert_eq!(status, 202, "{body}");
    }

    /// Subscribes a vehicle to a webhook through the Smartcar-compatible API.
    pub async fn subscribe(&self, vehicle: &Value, webhook_id: &str) {
        let (status, body) = self
            .call_as(
                vehicle["accessToken"].as_str().unwrap(),
                "POST",
                &format!(
                    "/v2.0/vehicles/{}/webhooks/{webhook_id}",
                    vehicle["id"].as_str().unwrap()
                ),
                None,
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }

    /// A request with the default application's management token.
    pub async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let token = self.token.clone();
        self.call_as(&token, method, path, body).await
    }

    /// A request with any bearer token.
    pub async fn call_as(
        &self,
        token: &str,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = self.http.request(method, self.url(path)).bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, value)
    }

    /// Creates a vehicle and returns `{id, accessToken, …}`.
    pub async fn vehicle(&self) -> Value {
        let (status, body) = self
            .call(
                "POST",
                "/api/v1/vehicles",
                Some(json!({"make":"TESLA","model":"Model 3","year":2020})),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        body
    }

    /// Creates a webhook of `kind` pointing at `callback`, returning the created object.
    pub async fn webhook(&self, kind: &str, callback: &str) -> Value {
        let mut body =
            json!({"name": format!("{kind} hook"), "type": kind, "callbackUri": callback});
        match kind {
            "scheduled" => {
                body["schedule"] = json!({"frequency":"hourly","interval":1});
                body["endpoints"] = json!(["/battery", "/location"]);
                body["units"] = json!("metric");
            }
            "eventBased" => body["events"] = json!(["DIAGNOSTIC_TROUBLE_CODES"]),
            "vehicleState" => {
                body["triggers"] = json!(["tractionbattery-stateofcharge"]);
                body["data"] = json!(["location-preciselocation"]);
            }
            _ => {}
        }
        let (status, created) = self.call("POST", "/api/v1/webhooks", Some(body)).await;
        assert_eq!(status, 201, "{created}");
        created
    }

    /// Creates and verifies a webhook; the receiver must answer challenges.
    pub async fn enabled_webhook(&self, kind: &str, callback: &str) -> Value {
        let created = self.webhook(kind, callback).await;
        let id = created["id"].as_str().unwrap();
        let (status, body) = self
            .call("POST", &format!("/api/v1/webhooks/{id}/verify"), None)
            .await;
        assert_eq!(status, 200, "{body}");
        created
    }

    /// The delivery record with its attempts.
    pub async fn delivery(&self, id: &str) -> Value {
        let (status, body) = self
            .call("GET", &format!("/api/v1/deliveries/{id}"), None)
            .await;
        assert_eq!(status, 200, "{body}");
        body
    }
}

/// What a receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub headers: HashMap<String, String>,
    pub body: String,
    /// When the request arrived.
    pub at: std::time::Instant,
}

impl Received {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap()
    }
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).map(String::as_str).unwrap_or("")
    }
}

#[derive(Clone)]
struct ReceiverState {
    amt: Option<String>,
    tx: mpsc::UnboundedSender<Received>,
    overrides: Arc<Mutex<HashMap<String, u16>>>,
}

/// An override status that makes a path never answer.
pub const HANG: u16 = 0;

/// A real HTTP receiver on 127.0.0.1. Its paths choose its answer:
/// `/ok/…` answers 200 (and answers challenges when it knows the AMT), `/slow/…` does the same
/// after 200 ms (a receiver that is busy, not broken), `/status/CODE` answers
/// CODE, `/redirect` answers 302, `/wrong-challenge` answers a wrong hash, `/hang` never
/// answers. `set_status` changes the answer of one path at run time.
pub struct Receiver {
    pub base: String,
    pub rx: mpsc::UnboundedReceiver<Received>,
    overrides: Arc<Mutex<HashMap<String, u16>>>,
}

impl Receiver {
    pub async fn start(amt: Option<&str>) -> Receiver {
        let (tx, rx) = mpsc::unbounded_channel();
        let overrides = Arc::new(Mutex::new(HashMap::new()));
        let state = ReceiverState {
            amt: amt.map(str::to_string),
            tx,
            overrides: overrides.clone(),
        };
        let app = Router::new()
            .route("/{*path}", post(receive))
            .with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Receiver {
            base,
            rx,
            overrides,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Makes `path` answer `status` from now on (`HANG`: never answer).
    pub fn set_status(&self, path: &str, status: u16) {
        self.overrides
            .lock()
            .unwrap()
            .insert(path.to_string(), status);
    }

    /// The next request, or a failed test after `PATIENCE`.
    pub async fn next(&mut self) -> Received {
        tokio::time::timeout(PATIENCE, self.rx.recv())
            .await
            .expect("the receiver got nothing in time")
            .expect("receiver closed")
    }

    /// Nothing arrived (everything sent so far has been taken).
    pub fn assert_quiet(&mut self) {
        if let Ok(got) = self.rx.try_recv() {
            panic!("unexpected delivery to {}: {}", got.path, got.body);
        }
    }
}

async fn receive(
    State(state): State<ReceiverState>,
    Path(path): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = format!("/{path}");
    let text = String::from_utf8_lossy(&body).to_string();
    let headers_map = headers
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    let _ = state.tx.send(Received {
        path: path.clone(),
        headers: headers_map,
        body: text.clone(),
        at: std::time::Instant::now(),
    });
    let forced = state.overrides.lock().unwrap().get(&path).copied();
    if let Some(status) = forced.filter(|s| *s != HANG) {
        return StatusCode::from_u16(status).unwrap().into_response();
    }
    if path == "/hang" || forced == Some(HANG) {
        std::future::pending::<()>().await;
    }
    if path.starts_with("/slow/") {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    if path == "/redirect" {
        return (StatusCode::FOUND, [("location", "/ok/elsewhere")]).into_response();
    }
    if let Some(code) = path.strip_prefix("/status/") {
        let code: u16 = code.parse().unwrap_or(500);
        return StatusCode::from_u16(code).unwrap().into_response();
    }
    let payload: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    let challenge = payload["payload"]["challenge"]
        .as_str()
        .or_else(|| payload["data"]["challenge"].as_str());
    if let (Some(challenge), Some(amt)) = (challenge, &state.amt) {
        let answer = if path == "/wrong-challenge" {
            "0".repeat(64)
        } else {
            hmac_hex(amt, challenge.as_bytes())
        };
        return axum::Json(json!({ "challenge": answer })).into_response();
    }
    StatusCode::OK.into_response()
}

/// HMAC-SHA256 in lowercase hex, computed here and not by fleethook's code.
pub fn hmac_hex(key: &str, message: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).unwrap();
    mac.update(message);
    hex::encode(mac.finalize().into_bytes())
}

/// Checks a delivery's Standard Webhooks signature with `secret`, independently of fleethook.
pub fn standard_signature_ok(received: &Received, secret: &str) -> bool {
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret.trim_start_matches("whsec_"))
        .unwrap();
    let signed = format!(
        "{}.{}.{}",
        received.header("webhook-id"),
        received.header("webhook-timestamp"),
        received.body
    );
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(signed.as_bytes());
    let expected = format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    );
    received
        .header("webhook-signature")
        .split(' ')
        .any(|entry| entry == expected)
}

/// Checks `SC-Signature` with the AMT, independently of fleethook.
pub fn sc_signature_ok(received: &Received, amt: &str) -> bool {
    received.header("sc-signature") == hmac_hex(amt, received.body.as_bytes())
}

/// Starts the real `fleethook serve` binary with `env` and returns once it says it listens.
/// Its stdout is drained by a thread so it never blocks on a full pipe.
pub fn spawn_serve(env: &[(&str, String)]) -> std::process::Child {
    use std::io::{BufRead, BufReader};
    let mut command = Command::new(env!("CARGO_BIN_EXE_fleethook"));
    command
        .arg("serve")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit());
    for (name, value) in env {
        command.env(name, value);
    }
    let mut child = command.spawn().expect("start fleethook");
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    loop {
        let line = lines
            .next()
            .expect("fleethook exited before listening")
            .unwrap();
        if line.contains("listening on") {
            break;
        }
    }
    std::thread::spawn(move || for _ in lines {});
    child
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The SDK version the compatibility promise is tested against.
const SMARTCAR_SDK: &str = "smartcar==6.19.1";

/// A virtual environment under `target/` with the SDK, made on first use.
pub fn sdk_python() -> PathBuf {
    // Tests of one binary run in parallel; one of them makes the environment.
    static MAKING: Mutex<()> = Mutex::new(());
    let _making = MAKING.lock().unwrap_or_else(|e| e.into_inner());
    let target = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/smartcar-sdk-venv");
    let python = target.join("bin/python");
    let marker = target.join(format!(".installed-{SMARTCAR_SDK}"));
    if !marker.exists() {
        let status = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&target)
            .status()
            .expect("python3 is needed for the SDK compatibility test");
        assert!(status.success(), "python3 -m venv failed");
        let status = Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                SMARTCAR_SDK,
            ])
            .status()
            .expect("pip");
        assert!(status.success(), "pip install {SMARTCAR_SDK} failed");
        std::fs::write(&marker, "").unwrap();
    }
    python
}

/// Asks Smartcar's Python SDK (`smartcar.verify_payload`) whether each `(signature, body)`
/// is signed with `amt`.
pub async fn sdk_verify_payloads(amt: &str, items: Vec<(String, String)>) -> Vec<bool> {
    use std::io::Write;
    let python = tokio::task::spawn_blocking(sdk_python).await.unwrap();
    let input = json!({"amt": amt, "items": items}).to_string();
    let script = "import json, sys, smartcar\n\
cfg = json.load(sys.stdin)\n\
print(json.dumps([smartcar.verify_payload(cfg['amt'], sig, body) for sig, body in cfg['items']]))\n";
    let output = tokio::task::spawn_blocking(move || {
        let mut child = std::process::Command::new(python)
            .args(["-c", script])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}
