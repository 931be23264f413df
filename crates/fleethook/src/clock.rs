//! The platform clock: the one source of "now" for schedules, retries, cadences and payload
//! timestamps. Real time, real time sped up by `FLEETHOOK_TIME_SCALE`, or a manual clock that
//! tests move by hand so hours of schedules run in milliseconds, or a real-time clock that
//! can jump forward (benchmarks).

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;

/// Milliseconds since the Unix epoch, in platform time.
pub type Millis = i64;

/// What the rest of the platform needs from time.
pub trait Clock: Send + Sync + 'static {
    /// Platform time now, in epoch milliseconds.
    fn now_ms(&self) -> Millis;

    /// How long to wait in real time until platform time reaches `at`. `None` means "wait for
    /// the clock to move" (the manual clock only moves when a test advances it).
    fn real_wait_until(&self, at: Millis) -> Option<Duration>;

    /// A receiver that changes whenever the clock jumps (manual clock only); other clocks
    /// never signal, their waits are plain timers.
    fn jumps(&self) -> watch::Receiver<Millis>;
}

/// Shared handle to the platform clock.
pub type SharedClock = Arc<dyn Clock>;

/// Wall-clock time in epoch milliseconds, for what must stay in real time (leases, HTTP
/// timeouts, Standard Webhooks timestamps that receivers compare with their own clock).
pub fn real_now_ms() -> Millis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as Millis)
        .unwrap_or(0)
}

/// Sleeps until platform time reaches `at`, or until the clock jumps, whichever is first.
/// Callers loop and re-check their work, so an early wake-up is harmless.
pub async fn sleep_until(clock: &dyn Clock, at: Millis) {
    let mut jumps = clock.jumps();
    match clock.real_wait_until(at) {
        Some(wait) if wait.is_zero() => {}
        Some(wait) => {
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = jumps.changed() => {}
            }
        }
        None => {
            let _ = jumps.changed().await;
        }
    }
}

/// Real time scaled by a factor: platform time starts at the real time of creation and then
/// runs `scale` times faster.
pub struct ScaledClock {
    origin_real: Millis,
    origin_instant: Instant,
    scale: f64,
    never: watch::Sender<Millis>,
}

impl ScaledClock {
    /// A clock that runs `scale` times faster than real time (`1.0` is real time).
    pub fn new(scale: f64) -> Self {
        let (never, _) = watch::channel(0);
        ScaledClock {
            origin_real: real_now_ms(),
            origin_instant: Instant::now(),
            scale: if scale.is_finite() && scale > 0.0 {
                scale
            } else {
                1.0
            },
            never,
        }
    }
}

impl Clock for ScaledClock {
    fn now_ms(&self) -> Millis {
        let elapsed = self.origin_instant.elapsed().as_secs_f64() * 1000.0 * self.scale;
        self.origin_real + elapsed as Millis
    }

    fn real_wait_until(&self, at: Millis) -> Option<Duration> {
        let ahead = (at - self.now_ms()).max(0) as f64;
        Some(Duration::from_secs_f64(ahead / 1000.0 / self.scale))
    }

    fn jumps(&self) -> watch::Receiver<Millis> {
        self.never.subscribe()
    }
}

/// Real time from a starting point that can be moved forward: platform time runs at real
/// speed from `start`, and [`JumpClock::jump_to`] skips ahead (waking every sleeper, like the
/// manual clock). Benchmarks use it to build a large fleet well before a boundary and then
/// jump to just before it, so the boundary comes in real time without waiting up to an hour.
pub struct JumpClock {
    origin_instant: Instant,
    /// Platform time at `origin_instant`, in epoch milliseconds; only grows.
    origin: AtomicI64,
    jumps: watch::Sender<Millis>,
}

impl JumpClock {
    /// A real-time clock that reads `start` now.
    pub fn new(start: Millis) -> Arc<Self> {
        let (jumps, _) = watch::channel(start);
        Arc::new(JumpClock {
            origin_instant: Instant::now(),
            origin: AtomicI64::new(start),
            jumps,
        })
    }

    fn elapsed_ms(&self) -> Millis {
        self.origin_instant.elapsed().as_millis() as Millis
    }

    /// Moves the clock forward so it reads `at` now (never backwards: time that runs back
    /// would re-fire schedules), and wakes everything sleeping on it.
    pub fn jump_to(&self, at: Millis) {
        let origin = at - self.elapsed_ms();
        self.origin.fetch_max(origin, Ordering::SeqCst);
        self.jumps.send_replace(self.now_ms());
    }
}

impl Clock for JumpClock {
    fn now_ms(&self) -> Millis {
        self.origin.load(Ordering::SeqCst) + self.elapsed_ms()
    }

    fn real_wait_until(&self, at: Millis) -> Option<Duration> {
        Some(Duration::from_millis((at - self.now_ms()).max(0) as u64))
    }

    fn jumps(&self) -> watch::Receiver<Millis> {
        self.jumps.subscribe()
    }
}

/// A clock that stands still until a test moves it.
pub struct ManualClock {
    now: AtomicI64,
    jumps: watch::Sender<Millis>,
}

impl ManualClock {
    /// A manual clock reading `start` epoch milliseconds.
    pub fn new(start: Millis) -> Arc<Self> {
        let (jumps, _) = watch::channel(start);
        Arc::new(ManualClock {
            now: AtomicI64::new(start),
            jumps,
        })
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let now = self
            .now
            .fetch_add(by.as_millis() as Millis, Ordering::SeqCst)
            + by.as_millis() as Millis;
        self.jumps.send_replace(now);
    }

    /// Sets the clock to `at` (never backwards: time that runs back would re-fire schedules).
    pub fn set(&self, at: Millis) {
        let now = self.now.fetch_max(at, Ordering::SeqCst).max(at);
        self.jumps.send_replace(now);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> Millis {
        self.now.load(Ordering::SeqCst)
    }

    fn real_wait_until(&self, at: Millis) -> Option<Duration> {
        if at <= self.now_ms() {
            Some(Duration::ZERO)
        } else {
            None
        }
    }

    fn jumps(&self) -> watch::Receiver<Millis> {
        self.jumps.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_forward() {
        let clock = ManualClock::new(1_000);
        clock.advance(Duration::from_secs(2));
        assert_eq!(clock.now_ms(), 3_000);
        clock.set(500);
        assert_eq!(clock.now_ms(), 3_000);
        clock.set(10_000);
        assert_eq!(clock.now_ms(), 10_000);
    }

    #[tokio::test]
    async fn manual_sleep_wakes_when_the_clock_jumps() {
        let clock = ManualClock::new(0);
        let waiter = {
            let clock = clock.clone();
            tokio::spawn(async move { sleep_until(clock.as_ref(), 60_000).await })
        };
        tokio::task::yield_now().await;
        clock.advance(Duration::from_secs(60));
        waiter.await.unwrap();
    }

    #[tokio::test]
    async fn jump_clock_runs_in_real_time_and_jumps_forward_only() {
        let clock = JumpClock::new(1_000_000);
        let start = clock.now_ms();
        assert!((1_000_000..1_000_000 + 1_000).contains(&start), "{start}");
        let waiter = {
            let clock = clock.clone();
            tokio::spawn(async move { sleep_until(clock.as_ref(), 1_000_000 + 3_600_000).await })
        };
        tokio::task::yield_now().await;
        clock.jump_to(1_000_000 + 3_600_000 - 1_000);
        let now = clock.now_ms();
        assert!(
            (1_000_000 + 3_600_000 - 1_000..1_000_000 + 3_600_000).contains(&now),
            "{now}"
        );
        // The jump wakes the sleeper, not an hour later; the rest is a real-time wait.
        waiter.await.unwrap();
        assert!(
            clock.real_wait_until(1_000_000 + 3_600_000).unwrap() <= Duration::from_millis(1_000)
        );
        clock.jump_to(0);
        assert!(clock.now_ms() >= now, "never backwards");
    }

    #[test]
    fn scaled_clock_converts_platform_waits_to_real_waits() {
        let clock = ScaledClock::new(3600.0);
        let wait = clock.real_wait_until(clock.now_ms() + 3_600_000).unwrap();
        assert!(wait <= Duration::from_millis(1000), "{wait:?}");
    }
}
