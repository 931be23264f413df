//! `fleethook bench SCENARIO`: benchmark scenarios that start everything they need on
//! 127.0.0.1 (the real server in-process, a local receiver, a load driver), print a human
//! table and write `target/bench/SCENARIO.json`, relative to the working directory, holding
//! the results, the configuration and the facts of the machine they ran on.
//!
//! Scenarios:
//! - `change-latency` ([`change_latency`]): vehicleState deliveries at a fixed rate of signal
//!   changes; p50, p99 and max from "ingest accepted" to "receiver got it".
//! - `schedule-burst` ([`schedule_burst`]): a million vehicles due at one hourly boundary of
//!   one scheduled webhook; seconds from the boundary to the last vehicle delivered, and the
//!   peak memory meanwhile.
//! - `throughput` ([`throughput`]): deliveries per second draining a full outbox and end to
//!   end from the ingest API, against the raw loopback limit of the same client and receiver.
//!
//! - `fairness` ([`fairness`]): vehicleState load over 1,000 endpoints, once all healthy
//!   and once with 10 % of them hanging or answering 500; the healthy endpoints' throughput
//!   ratio and p99 latency.
//!
//! What scenarios set up alike (server, receiver, API calls, memory, reports) is in
//! [`common`]; the paced driver of signal changes and the matching of deliveries to changes,
//! which change-latency and fairness share, in [`changes`].
//!
//! Each scenario also runs in a tiny configuration in the test suite
//! (`tests/bench_smoke.rs`), which asserts that it completes and counts correctly, never a
//! time.

pub mod change_latency;
pub mod changes;
pub mod common;
pub mod fairness;
pub mod schedule_burst;
pub mod throughput;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};
use clap::Args;
use serde::Serialize;
use serde_json::Value;

use crate::clock::Millis;
use crate::ids::{new_id, new_token};
use crate::model::{App, Vehicle, VehicleMode};
use crate::store::postgres::scratch::ScratchDatabase;
use common::TempDir;

/// The scenarios `fleethook bench` knows, by name.
pub const SCENARIOS: &[&str] = &[
    change_latency::NAME,
    throughput::NAME,
    schedule_burst::NAME,
    fairness::NAME,
];

/// Options of `fleethook bench`.
#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// The scenario to run (known: change-latency, throughput, schedule-burst, fairness).
    pub scenario: String,
    /// A shorter, smaller run of the scenario, for a quick look.
    #[arg(long)]
    pub quick: bool,
    /// The database to run against (default: a fresh temporary SQLite file, removed after).
    /// A `postgres://` URL names a server: the run gets a fresh database on it, dropped after.
    #[arg(long)]
    pub database_url: Option<String>,
    /// Server nodes sharing the database (throughput; more than one needs Postgres).
    #[arg(long, default_value_t = 1)]
    pub nodes: usize,
}

/// Runs the named scenario, prints its table and writes `target/bench/SCENARIO.json`.
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    if args.nodes != 1 && args.scenario != throughput::NAME {
        bail!("--nodes applies to the throughput scenario only");
    }
    match args.scenario.as_str() {
        change_latency::NAME => change_latency::run_cli(&args).await,
        throughput::NAME => throughput::run_cli(&args).await,
        schedule_burst::NAME => schedule_burst::run_cli(&args).await,
        fairness::NAME => fairness::run_cli(&args).await,
        other => bail!(
            "unknown bench scenario {other:?}; known scenarios: {}",
            SCENARIOS.join(", ")
        ),
    }
}

/// The `q`-quantile (0 ≤ q ≤ 1) of `sorted` (ascending) by the nearest-rank method: the
/// smallest value with at least `q` of the values at or below it. `None` when empty.
pub fn percentile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q.clamp(0.0, 1.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.saturating_sub(1).min(sorted.len() - 1)])
}

/// The machine a benchmark ran on, as far as it can be read cheaply; unknowns are `None`.
#[derive(Debug, Clone, Serialize)]
pub struct MachineFacts {
    /// Logical CPUs this process may use.
    pub nproc: usize,
    /// `MemTotal` of `/proc/meminfo`, in bytes.
    pub mem_total_bytes: Option<u64>,
    /// The first `model name` of `/proc/cpuinfo`.
    pub cpu_model: Option<String>,
    /// `rustc --version`, when a rustc is on the PATH.
    pub rustc: Option<String>,
    /// `git rev-parse HEAD` of the working directory, when it is a git checkout.
    pub git_commit: Option<String>,
    /// Whether the binary was built with optimisations (a debug build's numbers mean little).
    pub release_build: bool,
    /// `std::env::consts::OS` / `ARCH`.
    pub os_arch: String,
}

impl MachineFacts {
    /// Reads the facts of this machine.
    pub fn collect() -> MachineFacts {
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let mem_total_bytes = common::kb_field(&meminfo, "MemTotal:");
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string());
        MachineFacts {
            nproc: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            mem_total_bytes,
            cpu_model,
            rustc: command_output("rustc", &["--version"]),
            git_commit: command_output("git", &["rev-parse", "HEAD"]),
            release_build: !cfg!(debug_assertions),
            os_arch: format!("{}/{}", std::env::consts::OS, std::env::consts::ARCH),
        }
    }

    /// One line for the human table.
    pub fn summary(&self) -> String {
        format!(
            "{} CPU(s) {}, {} memory, {}{}",
            self.nproc,
            self.cpu_model.as_deref().unwrap_or("(unknown model)"),
            self.mem_total_bytes
                .map(|b| format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64))
                .unwrap_or_else(|| "unknown".into()),
            if self.release_build {
                "release build"
            } else {
                "DEBUG build"
            },
            self.git_commit
                .as_deref()
                .map(|c| format!(", commit {}", &c[..c.len().min(12)]))
                .unwrap_or_default(),
        )
    }
}

/// The trimmed stdout of a command that succeeded, else `None`.
fn command_output(program: &str, args: &[&str]) -> Option<String> {
    let output = Command::new(program).args(args).output().ok()?;
    if !output.status.success() {
        return None;
    }
    let text = String::from_utf8(output.stdout).ok()?.trim().to_string();
    (!text.is_empty()).then_some(text)
}

/// Writes `report` as pretty JSON to `DIR/<scenario>.json`, creating `DIR`; returns the path.
/// The CLI passes `target/bench` (relative to the working directory).
pub fn write_report(dir: &Path, scenario: &str, report: &Value) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join(format!("{scenario}.json"));
    let text = serde_json::to_string_pretty(report).context("cannot serialise the report")?;
    std::fs::write(&path, text + "\n")
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

/// The directory reports go to: `target/bench`, relative to the working directory.
pub fn report_dir() -> PathBuf {
    PathBuf::from("target").join("bench")
}

/// CPU time this process has used so far (user + system, all threads), in seconds, from
/// `/proc/self/stat`; `None` where that cannot be read. Benchmarks report CPU per delivery
/// beside rates because on a shared machine the CPU a run gets varies, its cost much less.
pub fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may hold spaces) in parentheses: utime and stime
    // are the 12th and 13th, in clock ticks (100 a second on Linux).
    let after = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}

/// Vehicle `index` of a benchmark fleet of `app`: a live Tesla with a unique user and VIN.
/// `tag` (five digits, e.g. from the clock) tells runs apart, so a second run on the same
/// `--database-url` never collides with the first's VINs.
pub fn bench_vehicle(app: &App, tag: i64, index: usize, now: Millis) -> Vehicle {
    Vehicle {
        id: new_id(),
        app_id: app.id.clone(),
        user_id: format!("bench-user-{tag:05}-{index:07}"),
        access_token: new_token("vat_"),
        make: "TESLA".into(),
        model: "Model 3".into(),
        year: 2020,
        vin: format!("BN{tag:05}{index:010}"),
        mode: VehicleMode::Live,
        simulated: false,
        created_at: now,
    }
}

/// The database a scenario runs on.
pub enum BenchDatabase {
    /// A SQLite file in a temporary folder, removed with it.
    Scratch(TempDir, String),
    /// A fresh database on the Postgres server `--database-url` names, dropped afterwards, so
    /// a run never sees an earlier run's rows.
    Postgres(ScratchDatabase),
    /// A SQLite file the user named, used as it is.
    Given(String),
}

impl BenchDatabase {
    /// The database for `--database-url` (`None`: a fresh temporary SQLite file).
    pub async fn prepare(database_url: Option<&str>) -> anyhow::Result<BenchDatabase> {
        match database_url {
            None => {
                let dir = TempDir::new()?;
                let url = format!("sqlite://{}", dir.path().join("bench.db").display());
                Ok(BenchDatabase::Scratch(dir, url))
            }
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => Ok(
                BenchDatabase::Postgres(ScratchDatabase::create_on(url).await?),
            ),
            Some(url) => Ok(BenchDatabase::Given(url.to_string())),
        }
    }

    /// The URL to open.
    pub fn url(&self) -> &str {
        match self {
            BenchDatabase::Scratch(_, url) | BenchDatabase::Given(url) => url,
            BenchDatabase::Postgres(db) => db.url(),
        }
    }

    /// `sqlite` or `postgres`, for the report.
    pub fn backend(&self) -> &'static str {
        match self {
            BenchDatabase::Postgres(_) => "postgres",
            _ => "sqlite",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&values, 0.5), Some(50.0));
        assert_eq!(percentile(&values, 0.99), Some(99.0));
        assert_eq!(percentile(&values, 1.0), Some(100.0));
        assert_eq!(percentile(&values, 0.0), Some(1.0));
        assert_eq!(percentile(&[7.0], 0.99), Some(7.0));
        assert_eq!(percentile(&[], 0.5), None);
    }
}
