//! The slow lane: webhooks whose attempts take long together hold at most a quarter of the
//! dispatcher's concurrency, so however many endpoints hang, the others keep the rest.
//!
//! The per-webhook in-flight cap alone bounds what *one* hanging endpoint holds; with the
//! default cap (32) eight hanging endpoints already fill the 256 global slots for a whole
//! HTTP timeout (15 s), and every other delivery waits behind them (`fleethook bench
//! fairness`: 50 hanging endpoints cut the healthy throughput to 40 % and pushed its p99 to
//! 30 s). Slots are held by *time*, so the lane is decided by time, not by success: an
//! endpoint that answers 500 at once costs what a healthy one does and stays out of it.
//!
//! A webhook is **slow** while its last finished attempt took longer than [`SLOW_AFTER`]
//! (a timeout included) or one of its attempts in flight has been running longer than that;
//! its next attempt that finishes quickly takes it out again. When the slow webhooks hold
//! their budget, a claim skips them all; when they hold less, a claim takes no more than the
//! room left, so the budget is never exceeded by claims. A webhook that was never seen slow
//! is not held back: until its attempts have run for [`SLOW_AFTER`], it counts against its
//! own per-webhook cap only.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

/// An attempt running longer than this makes its webhook slow; one finishing sooner makes
/// it fast again. Loopback and healthy internet receivers answer well within it.
pub const SLOW_AFTER: Duration = Duration::from_secs(1);

/// The slow webhooks together hold at most `concurrency / SLOW_SHARE` slots (at least one).
pub const SLOW_SHARE: usize = 4;

/// Which webhooks are slow, and the attempts each has in flight. Real time throughout: HTTP
/// timeouts are real time whatever the platform clock does.
#[derive(Debug)]
pub struct SlowLane {
    budget: usize,
    /// The start of each attempt in flight, per webhook.
    started: HashMap<String, Vec<Instant>>,
    /// Webhooks whose last finished attempt was slow.
    slow: HashSet<String>,
}

impl SlowLane {
    /// A lane for a dispatcher of `concurrency` slots.
    pub fn new(concurrency: usize) -> SlowLane {
        SlowLane {
            budget: (concurrency / SLOW_SHARE).max(1),
            started: HashMap::new(),
            slow: HashSet::new(),
        }
    }

    /// The slots the slow webhooks may hold together.
    pub fn budget(&self) -> usize {
        self.budget
    }

    /// An attempt to `webhook` starts at `at`.
    pub fn enter(&mut self, webhook: &str, at: Instant) {
        self.started
            .entry(webhook.to_string())
            .or_default()
            .push(at);
    }

    /// The attempt to `webhook` that started at `started` ended at `now`.
    pub fn exit(&mut self, webhook: &str, started: Instant, now: Instant) {
        if let Some(starts) = self.started.get_mut(webhook) {
            if let Some(i) = starts.iter().position(|s| *s == started) {
                starts.swap_remove(i);
            }
            if starts.is_empty() {
                self.started.remove(webhook);
            }
        }
        if now.saturating_duration_since(started) > SLOW_AFTER {
            self.slow.insert(webhook.to_string());
        } else {
            self.slow.remove(webhook);
        }
    }

    /// Whether `webhook` is slow at `now`.
    pub fn is_slow(&self, webhook: &str, now: Instant) -> bool {
        self.slow.contains(webhook)
            || self.started.get(webhook).is_some_and(|starts| {
                starts
                    .iter()
                    .any(|s| now.saturating_duration_since(*s) > SLOW_AFTER)
            })
    }

    /// Fits a claim of up to `limit` deliveries to the lane: with the budget held, every slow
    /// webhook joins `skip` and `limit` stands; with room left, the claim takes at most that
    /// room (it may be all slow). Returns the limit to claim with.
    pub fn restrict(&self, now: Instant, skip: &mut Vec<String>, limit: usize) -> usize {
        let slow: HashSet<&String> = self
            .slow
            .iter()
            .chain(self.started.keys())
            .filter(|w| self.is_slow(w, now))
            .collect();
        if slow.is_empty() {
            return limit;
        }
        let held: usize = slow
            .iter()
            .map(|w| self.started.get(*w).map_or(0, Vec::len))
            .sum();
        let room = self.budget.saturating_sub(held);
        if room > 0 {
            return limit.min(room);
        }
        let skipped: HashSet<String> = skip.iter().cloned().collect();
        skip.extend(slow.into_iter().filter(|w| !skipped.contains(*w)).cloned());
        limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn skip_of(lane: &SlowLane, now: Instant, limit: usize) -> (Vec<String>, usize) {
        let mut skip = vec!["capped".to_string()];
        let limit = lane.restrict(now, &mut skip, limit);
        skip.sort();
        (skip, limit)
    }

    #[test]
    fn a_fast_or_unknown_webhook_is_never_held_back() {
        let t0 = Instant::now();
        let mut lane = SlowLane::new(8);
        assert_eq!(lane.budget(), 2);
        lane.enter("new", t0);
        lane.enter("fast", t0);
        lane.exit("fast", t0, t0 + Duration::from_millis(5));
        let now = t0 + Duration::from_millis(500);
        assert!(!lane.is_slow("new", now) && !lane.is_slow("fast", now));
        assert_eq!(skip_of(&lane, now, 30), (vec!["capped".to_string()], 30));
    }

    #[test]
    fn slow_webhooks_share_the_budget_then_are_skipped() {
        let t0 = Instant::now();
        let mut lane = SlowLane::new(8);
        // One attempt in flight past SLOW_AFTER: slow, one slot of two held.
        lane.enter("hanging", t0);
        let now = t0 + SLOW_AFTER + Duration::from_millis(1);
        assert!(lane.is_slow("hanging", now));
        assert_eq!(skip_of(&lane, now, 30), (vec!["capped".to_string()], 1));
        // A second slow one fills the budget: both are skipped, the claim keeps its size.
        lane.enter("timed-out", t0);
        lane.exit("timed-out", t0, t0 + Duration::from_secs(15));
        lane.enter("timed-out", now);
        assert_eq!(
            skip_of(&lane, now, 30),
            (
                vec![
                    "capped".to_string(),
                    "hanging".to_string(),
                    "timed-out".to_string()
                ],
                30
            )
        );
    }

    #[test]
    fn a_quick_attempt_takes_a_webhook_out_of_the_lane() {
        let t0 = Instant::now();
        let mut lane = SlowLane::new(256);
        lane.enter("w", t0);
        lane.exit("w", t0, t0 + Duration::from_secs(15));
        assert!(lane.is_slow("w", t0 + Duration::from_secs(15)));
        let t1 = t0 + Duration::from_secs(40);
        lane.enter("w", t1);
        lane.exit("w", t1, t1 + Duration::from_millis(3));
        assert!(!lane.is_slow("w", t1 + Duration::from_millis(3)));
        assert!(lane.started.is_empty() && lane.slow.is_empty());
    }
}
