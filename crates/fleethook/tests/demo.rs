//! `fleethook demo` as a newcomer runs it: within a minute its receiver prints deliveries of
//! all four kinds, every one with good signatures.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const KINDS: [&str; 4] = ["scheduled", "dynamic", "eventBased", "vehicleState"];

#[test]
fn the_demo_shows_every_kind_of_delivery_within_a_minute() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_fleethook"))
        .args(["demo", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start fleethook demo");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let started = Instant::now();
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    let mut transcript = Vec::new();
    let mut bad = Vec::new();
    while seen.len() < KINDS.len() {
        let left = Duration::from_secs(60).saturating_sub(started.elapsed());
        let Ok(line) = rx.recv_timeout(left) else {
            break;
        };
        if line.contains('✗') {
            bad.push(line.clone());
        }
        if line.contains("✓ signed") {
            if let Some(kind) = KINDS.iter().find(|k| line.trim_start().starts_with(**k)) {
                *seen.entry(kind).or_default() += 1;
            }
        }
        transcript.push(line);
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(bad.is_empty(), "bad deliveries: {bad:#?}");
    assert_eq!(
        seen.keys().copied().collect::<Vec<_>>(),
        {
            let mut k = KINDS.to_vec();
            k.sort();
            k
        },
        "kinds seen within a minute: {seen:?}\n{}",
        transcript.join("\n")
    );
    assert!(
        transcript.iter().any(|l| l.contains("http://127.0.0.1:")),
        "the demo prints its address"
    );
    assert!(
        transcript.iter().any(|l| l.contains("dashboard:")),
        "the demo prints the dashboard's address"
    );
}
