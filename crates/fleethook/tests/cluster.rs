//! Several nodes share the work: three real `fleethook serve` processes on one fresh Postgres
//! database, a fleet subscribed to a scheduled and a vehicleState webhook, and a burst of
//! payloads accepted by every node. One node is killed with SIGKILL mid-burst. Every payload
//! of the log still reaches the receiver; the only duplicates are deliveries that were in
//! flight at the kill; every scheduled boundary reaches every vehicle exactly once, with none
//! skipped.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::process::Child;
use std::time::{Duration, Instant};

use common::*;
use fleethook::store::postgres::scratch::ScratchDatabase;
use serde_json::{json, Value};

const AMT: &str = "amt_cluster_test";
const NODES: usize = 3;
const VEHICLES: usize = 8;
/// A platform minute is ten real seconds: a minutely boundary every 10 s, longer than the
/// 5 s trigger lease, so a boundary held by the killed node is resumed before the next one.
const TIME_SCALE: &str = "6";
/// The shortest outbox lease the dispatcher allows: the killed node's deliveries are taken
/// over 20 s after it claimed them.
const LEASE_SECONDS: &str = "20";
/// How long the test waits for the cluster to deliver what it must, at most.
const DEADLINE: Duration = Duration::from_secs(180);
const MINUTE_MS: i64 = 60_000;

struct Node {
    base: String,
    child: Option<Child>,
}

fn start_node(database_url: &str) -> Node {
    let port = free_port();
    let child = spawn_serve(&[
        ("FLEETHOOK_DATABASE_URL", database_url.to_string()),
        ("FLEETHOOK_LISTEN", format!("127.0.0.1:{port}")),
        ("FLEETHOOK_MANAGEMENT_TOKEN", AMT.to_string()),
        ("FLEETHOOK_ALLOW_PRIVATE_CALLBACKS", "true".to_string()),
        ("FLEETHOOK_TIME_SCALE", TIME_SCALE.to_string()),
        (
            "FLEETHOOK_DELIVERY_LEASE_SECONDS",
            LEASE_SECONDS.to_string(),
        ),
        ("FLEETHOOK_LOG", "fleethook=warn".to_string()),
    ]);
    Node {
        base: format!("http://127.0.0.1:{port}"),
        child: Some(child),
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

async fn call(
    http: &reqwest::Client,
    token: &str,
    method: &str,
    url: String,
    body: Option<Value>,
) -> (u16, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut request = http.request(method, url).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Every delivery in a webhook's log, page by page.
async fn log(http: &reqwest::Client, base: &str, webhook: &str) -> Vec<Value> {
    let mut all = Vec::new();
    loop {
        let (status, page) = call(
            http,
            AMT,
            "GET",
            format!(
                "{base}/api/v1/webhooks/{webhook}/deliveries?limit=1000&offset={}",
                all.len()
            ),
            None,
        )
        .await;
        assert_eq!(status, 200, "{page}");
        let items = page["deliveries"].as_array().unwrap().clone();
        if items.is_empty() {
            return all;
        }
        all.extend(items);
    }
}

fn millis(iso: &Value) -> i64 {
    chrono::DateTime::parse_from_rfc3339(iso.as_str().unwrap())
        .unwrap()
        .timestamp_millis()
}

/// The event ids of the pending deliveries leased by the node with this process id (its
/// leases carry `node-<pid>-…`).
async fn in_flight(pool: &sqlx::PgPool, pid: u32) -> HashSet<String> {
    sqlx::query_scalar(
        "SELECT event_id FROM deliveries WHERE status = 'pending' AND lease_owner LIKE $1",
    )
    .bind(format!("node-{pid}-%"))
    .fetch_all(pool)
    .await
    .unwrap()
    .into_iter()
    .collect()
}

/// Notes an arrival by its webhook-id.
fn record(got: Received, arrivals: &mut HashMap<String, Vec<Instant>>) {
    assert!(sc_signature_ok(&got, AMT), "every delivery is signed");
    arrivals
        .entry(got.header("webhook-id").to_string())
        .or_default()
        .push(got.at);
}

fn soc(value: f64) -> Value {
    json!({"signals":[{"code":"tractionbattery-stateofcharge","body":{"unit":"percent","value":value}}]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_share_the_work_and_survive_a_sigkill_mid_burst() {
    let start = Instant::now();
    let db = ScratchDatabase::create()
        .await
        .unwrap_or_else(|err| panic!("{err:#}"));
    let http = reqwest::Client::new();
    let mut receiver = Receiver::start(Some(AMT)).await;

    // One at a time, so exactly one of them creates the default application.
    let mut nodes = Vec::new();
    for _ in 0..NODES {
        let url = db.url().to_string();
        nodes.push(
            tokio::task::spawn_blocking(move || start_node(&url))
                .await
                .unwrap(),
        );
    }
    let bases: Vec<String> = nodes.iter().map(|n| n.base.clone()).collect();

    // Webhooks made on one node, verified through another: every node serves the same state.
    let mut hooks = HashMap::new();
    for (i, (kind, path, extra)) in [
        ("scheduled", "/ok/scheduled", json!({"schedule":{"frequency":"minutely","interval":1},"endpoints":["/battery"],"units":"metric"})),
        ("vehicleState", "/slow/state", json!({"triggers":["tractionbattery-stateofcharge"]})),
        ("dynamic", "/slow/burst", json!({})),
    ]
    .into_iter()
    .enumerate()
    {
        let mut body = json!({"name": kind, "type": kind, "callbackUri": receiver.url(path)});
        body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        let (status, created) = call(&http, AMT, "POST", format!("{}/api/v1/webhooks", bases[i % NODES]), Some(body)).await;
        assert_eq!(status, 201, "{created}");
        let id = created["id"].as_str().unwrap().to_string();
        let (status, verified) = call(&http, AMT, "POST", format!("{}/api/v1/webhooks/{id}/verify", bases[(i + 1) % NODES]), None).await;
        assert_eq!(status, 200, "{verified}");
        hooks.insert(kind, id);
    }

    // The fleet, spread over the nodes, subscribed to the scheduled and vehicleState webhooks.
    let mut vehicles = Vec::new();
    for i in 0..VEHICLES {
        let base = &bases[i % NODES];
        let (status, vehicle) = call(
            &http,
            AMT,
            "POST",
            format!("{base}/api/v1/vehicles"),
            Some(json!({"make":"TESLA","model":"Model 3","year":2020})),
        )
        .await;
        assert_eq!(status, 201, "{vehicle}");
        let id = vehicle["id"].as_str().unwrap().to_string();
        let token = vehicle["accessToken"].as_str().unwrap().to_string();
        let (status, _) = call(
            &http,
            AMT,
            "POST",
            format!("{base}/api/v1/vehicles/{id}/signals"),
            Some(soc(50.0)),
        )
        .await;
        assert_eq!(status, 202);
        for kind in ["scheduled", "vehicleState"] {
            let (status, body) = call(
                &http,
                &token,
                "POST",
                format!("{base}/v2.0/vehicles/{id}/webhooks/{}", hooks[kind]),
                None,
            )
            .await;
            assert_eq!(status, 200, "{body}");
        }
        vehicles.push(id);
    }

    // The burst: four clients, each going round the nodes, post test payloads and state
    // changes (every value distinct, so every accepted ingest is a change). Every 202 is a promise; a node that is gone just answers nothing.
    let posters: Vec<_> = (0..4)
        .map(|client| {
            let (http, bases, vehicles) = (http.clone(), bases.clone(), vehicles.clone());
            let burst = hooks["dynamic"].clone();
            tokio::spawn(async move {
                let mut accepted = 0usize;
                for i in 0..120usize {
                    let base = &bases[(client + i) % NODES];
                    let request = if i % 2 == 0 {
                        http.post(format!("{base}/api/v1/webhooks/{burst}/test"))
                    } else {
                        let vehicle = &vehicles[(client * 31 + i) % vehicles.len()];
                        http.post(format!("{base}/api/v1/vehicles/{vehicle}/signals"))
                            .json(&soc((client * 120 + i) as f64 / 10.0))
                    };
                    if let Ok(r) = request.bearer_auth(AMT).send().await {
                        if r.status().as_u16() == 202 {
                            accepted += 1;
                        }
                    }
                }
                accepted
            })
        })
        .collect();

    // Everything the receiver gets, by webhook-id, with arrival times.
    let mut arrivals: HashMap<String, Vec<Instant>> = HashMap::new();
    let mut burst_seen = 0;
    while burst_seen < 40 {
        let got = receiver.next().await;
        if got.path == "/slow/burst" {
            burst_seen += 1;
        }
        record(got, &mut arrivals);
    }
    // Kill the second node while it has deliveries claimed and on the wire. Its leases name
    // it by process id; right after the kill they are exactly what it had in flight (nobody
    // may take them over for 20 s).
    let pool = sqlx::PgPool::connect(db.url()).await.unwrap();
    let victim_pid = nodes[1].child.as_ref().unwrap().id();
    while in_flight(&pool, victim_pid).await.is_empty() {
        assert!(
            Instant::now() < start + DEADLINE,
            "node 2 never claimed anything"
        );
        let got = receiver.next().await;
        record(got, &mut arrivals);
    }
    let killed_at = Instant::now();
    let mut victim = nodes[1].child.take().unwrap();
    victim.kill().unwrap(); // SIGKILL
    victim.wait().unwrap();
    let in_flight_at_kill = in_flight(&pool, victim_pid).await;
    let mut accepted = 0;
    for poster in posters {
        accepted += poster.await.unwrap();
    }
    assert!(
        accepted > burst_seen,
        "the kill came after the burst was over"
    );

    // The survivors see the same log. Wait until every event in it has arrived and two
    // boundaries after the kill have been delivered.
    let survivor = bases[0].clone();
    let deadline = start + DEADLINE;
    let mut last_logs = HashMap::new();
    let mut kill_minute = None;
    loop {
        while let Ok(got) = receiver.rx.try_recv() {
            record(got, &mut arrivals);
        }
        let mut missing = 0;
        for (kind, id) in &hooks {
            let entries = log(&http, &survivor, id).await;
            missing += entries
                .iter()
                .filter(|d| d["purpose"] != "verify")
                .filter(|d| {
                    // Arrived, and recorded as sent: the outbox holds nothing of it any more.
                    !arrivals.contains_key(d["eventId"].as_str().unwrap())
                        || d["status"] != "succeeded"
                })
                .count();
            last_logs.insert(*kind, entries);
        }
        let minutes: BTreeSet<i64> = last_logs["scheduled"]
            .iter()
            .map(|d| millis(&d["createdAt"]).div_euclid(MINUTE_MS))
            .collect();
        let last_minute = minutes.iter().next_back().copied().unwrap_or(0);
        let kill_minute = *kill_minute.get_or_insert(last_minute);
        let boundaries_after_kill = minutes.iter().filter(|m| **m > kill_minute).count();
        if missing == 0 && boundaries_after_kill >= 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "after {DEADLINE:?}: {missing} logged payloads not delivered, {boundaries_after_kill} boundaries after the kill"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // What arrived before the last look at the log (a resend arrives before it is recorded).
    while let Ok(got) = receiver.rx.try_recv() {
        record(got, &mut arrivals);
    }

    // Every payload accepted by any node is in the log and reached the receiver.
    let events: usize = ["dynamic", "vehicleState"]
        .iter()
        .map(|k| {
            last_logs[k]
                .iter()
                .filter(|d| d["purpose"] != "verify")
                .count()
        })
        .sum();
    assert!(
        events >= accepted,
        "{events} payloads logged for {accepted} accepted requests"
    );

    // Duplicates: only deliveries that were on the wire (or not yet recorded) at the kill,
    // delivered again once the dead node's leases ran out; never a third time.
    let duplicated: Vec<(&String, &Vec<Instant>)> =
        arrivals.iter().filter(|(_, at)| at.len() > 1).collect();
    for (event, at) in &duplicated {
        assert_eq!(at.len(), 2, "event {event} arrived {} times", at.len());
        // The victim's leases right after the kill are what it had claimed; a request it wrote
        // just before dying can still reach the receiver's handler a moment after `killed_at`
        // on a loaded machine, so the lease, not the arrival time, says it was in flight.
        assert!(
            at[0] <= killed_at || in_flight_at_kill.contains(*event),
            "event {event} was duplicated though the killed node did not hold it"
        );
    }

    // Every vehicle got every boundary from its first one on, each exactly once, across the
    // cluster.
    let mut by_vehicle: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for d in &last_logs["scheduled"] {
        assert_eq!(d["status"], "succeeded", "{d}");
        let minute = millis(&d["createdAt"]).div_euclid(MINUTE_MS);
        for v in d["vehicleIds"].as_array().unwrap() {
            by_vehicle
                .entry(v.as_str().unwrap().to_string())
                .or_default()
                .push(minute);
        }
    }
    assert_eq!(
        by_vehicle.len(),
        VEHICLES,
        "every vehicle got scheduled deliveries"
    );
    for (vehicle, mut minutes) in by_vehicle {
        minutes.sort_unstable();
        let first = minutes[0];
        let expected: Vec<i64> = (first..first + minutes.len() as i64).collect();
        assert_eq!(
            minutes, expected,
            "vehicle {vehicle}: each boundary once, none skipped"
        );
    }
    eprintln!(
        "{accepted} accepted; {events} event payloads and {} scheduled deliveries logged; \
         {} requests received, {} duplicates; {} deliveries in flight at the kill",
        last_logs["scheduled"].len(),
        arrivals.values().map(Vec::len).sum::<usize>(),
        duplicated.len(),
        in_flight_at_kill.len()
    );
    drop(nodes);
}
