//! Nothing accepted is lost: the real `fleethook serve` binary is killed with SIGKILL while
//! payloads are in the outbox and on the wire, restarted on the same SQLite file, and every
//! accepted payload still reaches the receiver (duplicates allowed, losses not).

mod common;

use std::collections::HashSet;
use std::path::Path;
use std::process::{Child, Command};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

const AMT: &str = "amt_crash_test";

/// Starts `fleethook serve` on the SQLite file and returns once it says it listens.
fn start_server(db: &Path, port: u16) -> Child {
    spawn_serve(&[
        (
            "FLEETHOOK_DATABASE_URL",
            format!("sqlite://{}", db.display()),
        ),
        ("FLEETHOOK_LISTEN", format!("127.0.0.1:{port}")),
        ("FLEETHOOK_MANAGEMENT_TOKEN", AMT.to_string()),
        ("FLEETHOOK_ALLOW_PRIVATE_CALLBACKS", "true".to_string()),
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_accepted_payload_arrives_after_a_sigkill_mid_burst() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("crash.db");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let mut receiver = Receiver::start(Some(AMT)).await;

    let (db2, mut server) = (db.clone(), None);
    server.replace(
        tokio::task::spawn_blocking(move || start_server(&db2, port))
            .await
            .unwrap(),
    );

    let created: serde_json::Value = http
        .post(format!("{base}/api/v1/webhooks"))
        .bearer_auth(AMT)
        .json(&json!({"name":"crash","type":"dynamic","callbackUri": receiver.url("/slow/crash")}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["id"].as_str().unwrap().to_string();
    let verified = http
        .post(format!("{base}/api/v1/webhooks/{id}/verify"))
        .bearer_auth(AMT)
        .send()
        .await
        .unwrap();
    assert_eq!(verified.status().as_u16(), 200);
    receiver.next().await;

    // Accept a burst of payloads from four concurrent clients; each 202 is a promise. The
    // receiver is slow, so the outbox fills faster than it drains.
    const BURST_PER_CLIENT: usize = 100;
    let accepted_so_far = Arc::new(AtomicUsize::new(0));
    let posters: Vec<_> = (0..4)
        .map(|_| {
            let (http, base, id) = (http.clone(), base.clone(), id.clone());
            let accepted_so_far = accepted_so_far.clone();
            tokio::spawn(async move {
                let mut accepted = 0usize;
                for _ in 0..BURST_PER_CLIENT {
                    let sent = http
                        .post(format!("{base}/api/v1/webhooks/{id}/test"))
                        .bearer_auth(AMT)
                        .send()
                        .await;
                    match sent {
                        Ok(r) if r.status().as_u16() == 202 => {
                            accepted += 1;
                            accepted_so_far.fetch_add(1, Ordering::SeqCst);
                        }
                        _ => break, // the server is gone
                    }
                }
                accepted
            })
        })
        .collect();

    // Kill the server while payloads are still being accepted and delivered.
    let mut seen: HashSet<String> = HashSet::new();
    let mut received = 0usize;
    while received < 20 {
        let got = receiver.next().await;
        seen.insert(got.header("webhook-id").to_string());
        received += 1;
    }
    // On a loaded machine the posters may lag behind the receiver; kill only once the
    // server has accepted more than it delivered, so something is in the outbox.
    let deadline = Instant::now() + Duration::from_secs(60);
    while accepted_so_far.load(Ordering::SeqCst) < received + 20 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut child = server.take().unwrap();
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let mut accepted = 0;
    for poster in posters {
        accepted += poster.await.unwrap();
    }
    assert!(
        accepted > received,
        "the kill came after everything was delivered ({accepted} accepted): nothing was pending"
    );

    // Restart on the same file. Every payload in the log (which includes any whose 202 was
    // lost with the process) must arrive.
    let db2 = db.clone();
    let mut restarted = tokio::task::spawn_blocking(move || start_server(&db2, port))
        .await
        .unwrap();
    let log: serde_json::Value = http
        .get(format!("{base}/api/v1/webhooks/{id}/deliveries?limit=1000"))
        .bearer_auth(AMT)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let expected: HashSet<String> = log["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["purpose"] == "test")
        .map(|d| d["eventId"].as_str().unwrap().to_string())
        .collect();
    assert!(expected.len() >= accepted, "the log lost accepted payloads");
    while !expected.is_subset(&seen) {
        let got = receiver.next().await;
        assert!(sc_signature_ok(&got, AMT));
        seen.insert(got.header("webhook-id").to_string());
        received += 1;
    }
    restarted.kill().unwrap();
    restarted.wait().unwrap();
    eprintln!(
        "{accepted} accepted, {} in the outbox, {received} requests received ({} duplicates)",
        expected.len(),
        received - seen.len()
    );
}

#[tokio::test]
async fn a_second_serve_on_the_same_sqlite_file_refuses_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("twice.db");
    let db2 = db.clone();
    let mut first = tokio::task::spawn_blocking(move || start_server(&db2, free_port()))
        .await
        .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_fleethook"))
        .arg("serve")
        .env(
            "FLEETHOOK_DATABASE_URL",
            format!("sqlite://{}", db.display()),
        )
        .env("FLEETHOOK_LISTEN", format!("127.0.0.1:{}", free_port()))
        .output()
        .unwrap();
    first.kill().unwrap();
    first.wait().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("another fleethook process"), "{stderr}");
    assert!(stderr.contains("twice.db"), "{stderr}");
}

#[tokio::test]
async fn apps_create_prints_one_json_line_and_the_token_works() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("apps.db");
    let output = Command::new(env!("CARGO_BIN_EXE_fleethook"))
        .args(["apps", "create", "fleet ops"])
        .env(
            "FLEETHOOK_DATABASE_URL",
            format!("sqlite://{}", db.display()),
        )
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 1);
    let app: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    let keys: Vec<&String> = app.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["id", "name", "managementToken"]);
    assert_eq!(app["name"], "fleet ops");

    let port = free_port();
    let db2 = db.clone();
    let mut server = tokio::task::spawn_blocking(move || start_server(&db2, port))
        .await
        .unwrap();
    let response = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}/api/v1/webhooks"))
        .bearer_auth(app["managementToken"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    server.kill().unwrap();
    server.wait().unwrap();
    assert_eq!(response.status().as_u16(), 200);
}
