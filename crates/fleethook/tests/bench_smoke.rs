//! The benchmark scenarios in a tiny configuration: each completes and counts correctly.
//! Times are never asserted (they depend on the machine); only counts are.

use fleethook::bench::change_latency::{run_scenario, ChangeLatencyConfig};
use fleethook::bench::schedule_burst::{self, ScheduleBurstConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn change_latency_delivers_every_change_exactly_once() {
    let config = ChangeLatencyConfig::smoke();
    let expected = config.changes();
    assert!(expected > 0);
    let report = run_scenario(config)
        .await
        .expect("the change-latency scenario completes");
    assert_eq!(report.changes, expected, "every change was accepted");
    assert_eq!(
        report.delivered_changes, expected,
        "every change was delivered"
    );
    assert_eq!(report.deliveries, expected, "one delivery per change");
    assert_eq!(report.duplicates, 0, "no change was delivered twice");
    assert_eq!(report.unmatched, 0, "no delivery matched no change");
    assert_eq!(
        report.first_deliveries, 0,
        "no first delivery in this setup"
    );
    assert_eq!(report.outbox_pending_after, 0, "nothing left in the outbox");
    assert!(report.p50_ms <= report.p99_ms && report.p99_ms <= report.max_ms);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throughput_delivers_every_payload_of_every_phase_once() {
    use fleethook::bench::throughput::{run_scenario, ThroughputConfig};
    let config = ThroughputConfig::smoke();
    let expected = config.deliveries;
    let report = run_scenario(config)
        .await
        .expect("the throughput scenario completes");
    assert_eq!(report.deliveries, expected);
    assert_eq!(
        report.drained, expected,
        "the drain delivered every payload"
    );
    assert_eq!(
        report.end_to_end_delivered, expected,
        "every ingested change was delivered"
    );
    assert_eq!(report.raw_failures, 0, "every raw request got a 200");
    assert_eq!(report.duplicates, 0, "nothing was delivered twice");
    assert_eq!(report.outbox_pending_after, 0, "nothing left in the outbox");
    assert_eq!(report.backend, "sqlite");
    assert!(report.body_bytes > 0);
    // Every phase writes (ingests, completions): SQLite's write connection was held in each.
    for (phase, share) in [
        ("fill", report.fill_write_busy),
        ("drain", report.drain_write_busy),
        ("end to end", report.end_to_end_write_busy),
    ] {
        let share = share.unwrap_or_else(|| panic!("the {phase} reports its write share"));
        assert!(share > 0.0, "the {phase} held the write connection");
    }
    // The end-to-end floor is two raw exchanges, and its ceiling follows from it (CPU time is
    // read in ticks of 10 ms: a tiny raw phase may have cost none, and then has no ceiling).
    let raw_us = report.raw_cpu_us.expect("the raw phase reports its CPU");
    assert_eq!(report.end_to_end_http_cpu_us, Some(2.0 * raw_us));
    if raw_us > 0.0 {
        let ceiling = report
            .end_to_end_http_ceiling_per_s
            .expect("the end-to-end ceiling is reported");
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        assert!((ceiling * 2.0 * raw_us / 1e6 - cpus as f64).abs() < 1e-6);
    } else {
        assert_eq!(report.end_to_end_http_ceiling_per_s, None);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedule_burst_delivers_every_vehicle_exactly_once() {
    let config = ScheduleBurstConfig::smoke();
    let vehicles = config.vehicles;
    assert!(
        vehicles > config.setup_batch,
        "setup runs in several batches"
    );
    let report = schedule_burst::run_scenario(config)
        .await
        .expect("the schedule-burst scenario completes");
    assert_eq!(report.vehicles, vehicles);
    assert_eq!(
        report.vehicles_delivered, vehicles,
        "every vehicle was delivered"
    );
    assert_eq!(report.duplicates, 0, "no vehicle was delivered twice");
    assert_eq!(report.unknown_vehicles, 0, "no body named a stranger");
    assert_eq!(report.error_items, 0, "every item is a value, not an error");
    assert!(report.bodies >= 1);
    assert_eq!(report.outbox_pending_after, 0, "nothing left in the outbox");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fairness_delivers_every_healthy_change_once_and_tries_the_broken_endpoints() {
    use fleethook::bench::fairness::{run_scenario, FairnessConfig};

    let config = FairnessConfig::smoke();
    let changes = config.changes();
    let unhealthy = config.hanging + config.erroring;
    let healthy_changes = changes * (config.endpoints - unhealthy) / config.endpoints;
    let report = run_scenario(config.clone())
        .await
        .expect("the fairness scenario completes");
    assert_eq!(report.endpoints, config.endpoints);
    assert_eq!(report.hanging_endpoints, config.hanging);
    assert_eq!(report.erroring_endpoints, config.erroring);
    assert_eq!(report.healthy_endpoints, config.endpoints - unhealthy);
    for (name, run) in [("baseline", &report.baseline), ("faulty", &report.faulty)] {
        assert_eq!(run.changes, changes, "{name}: every change was accepted");
        assert_eq!(run.healthy_changes, healthy_changes, "{name}");
        assert_eq!(
            run.healthy_delivered, healthy_changes,
            "{name}: every change to a healthy endpoint was delivered"
        );
        assert_eq!(
            run.healthy_deliveries, healthy_changes,
            "{name}: one delivery per change"
        );
        assert_eq!(run.duplicates, 0, "{name}: no change was delivered twice");
        assert_eq!(run.unmatched, 0, "{name}: no delivery matched no change");
        assert_eq!(run.first_deliveries, 0, "{name}: no first delivery");
        assert_eq!(
            run.disabled_webhooks, 0,
            "{name}: vehicleState never disables"
        );
    }
    let baseline = &report.baseline;
    assert_eq!(baseline.unhealthy_changes, 0);
    assert_eq!(baseline.hanging_attempts + baseline.erroring_attempts, 0);
    assert_eq!(
        baseline.outbox_pending_after, 0,
        "nothing left in the outbox"
    );
    let faulty = &report.faulty;
    assert_eq!(faulty.unhealthy_changes, changes - healthy_changes);
    assert_eq!(
        faulty.unhealthy_changes_attempted, faulty.unhealthy_changes,
        "every change to a broken endpoint was tried"
    );
    assert!(
        faulty.hanging_attempts >= 1,
        "the hanging endpoint was tried"
    );
    assert!(
        faulty.erroring_attempts >= 1,
        "the erroring endpoint was tried"
    );
    assert!(
        faulty.outbox_pending_after >= 1,
        "failed changes wait for their retries"
    );
}
