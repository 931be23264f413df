//! The retry roads of SPEC 8, as pure functions of an attempt's result: what happens next to the
//! delivery and whether its webhook is disabled. Waits are platform time; the caller adds them
//! to the platform clock.

use std::time::{Duration, SystemTime};

use rand::Rng;

use crate::model::{DeliveryPurpose, WebhookKind};

/// The largest jitter, as a fraction of the planned wait (SPEC 8: each wait ±10 %).
pub const MAX_JITTER: f64 = 0.1;

/// Waits between attempts of a `scheduled` webhook: 5 retries within 10 minutes.
pub const SCHEDULED_WAITS: [Duration; 5] = secs([20, 40, 80, 160, 300]);

/// Waits of `dynamic` and `eventBased` webhooks: 6 retries, 10 s doubling to 320 s.
pub const BACKOFF_WAITS: [Duration; 6] = secs([10, 20, 40, 80, 160, 320]);

/// Waits of `vehicleState` webhooks: 3 retries, then the event is dropped.
pub const VEHICLE_STATE_WAITS: [Duration; 3] = secs([25, 50, 100]);

const fn secs<const N: usize>(s: [u64; N]) -> [Duration; N] {
    let mut out = [Duration::ZERO; N];
    let mut i = 0;
    while i < N {
        out[i] = Duration::from_secs(s[i]);
        i += 1;
    }
    out
}

/// The planned waits before each retry of a webhook kind (jitter not applied).
pub fn retry_waits(kind: WebhookKind) -> &'static [Duration] {
    match kind {
        WebhookKind::Scheduled => &SCHEDULED_WAITS,
        WebhookKind::Dynamic | WebhookKind::EventBased => &BACKOFF_WAITS,
        WebhookKind::VehicleState => &VEHICLE_STATE_WAITS,
    }
}

/// Whether running out of retries disables the webhook (vehicleState drops the event instead).
pub fn disables_when_exhausted(kind: WebhookKind) -> bool {
    kind != WebhookKind::VehicleState
}

/// What one attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptResult {
    /// A 2xx (and, for verification, the right challenge).
    Succeeded,
    /// Anything else; `status` is the HTTP status when the receiver answered, `error` the text
    /// the log shows ("HTTP 500", "timed out after 15 s", …).
    Failed { status: Option<u16>, error: String },
}

/// What happens to the delivery next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Delivered.
    Succeeded,
    /// Try again after this wait, in platform time.
    Retry(Duration),
    /// No more tries.
    Failed,
}

/// The decision after one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The delivery's next state.
    pub next: Next,
    /// Disable the webhook, with this reason.
    pub disable: Option<String>,
}

/// Decides what follows attempt `attempt_number` (1 for the first) of a delivery of `purpose` to
/// a webhook of `kind`. `retry_after` is the receiver's `Retry-After`, honoured on 429 and 503
/// only and only up to twice the planned wait; `jitter` in `[-0.1, 0.1]` stretches the planned
/// wait (see [`random_jitter`]).
pub fn decide(
    kind: WebhookKind,
    purpose: DeliveryPurpose,
    attempt_number: i64,
    result: &AttemptResult,
    retry_after: Option<Duration>,
    jitter: f64,
) -> Decision {
    let (status, error) = match result {
        AttemptResult::Succeeded => {
            return Decision {
                next: Next::Succeeded,
                disable: None,
            }
        }
        AttemptResult::Failed { status, error } => (*status, error),
    };
    // The challenge is answered synchronously by whoever asked for it: one try, and a wrong
    // answer is reported to them rather than held against the webhook.
    if purpose == DeliveryPurpose::Verify {
        return failed(None);
    }
    if status == Some(410) {
        return failed(Some("callback answered 410 Gone".to_string()));
    }
    // Test payloads take the same road as events: only verification is special.
    let waits = retry_waits(kind);
    let retries_done = usize::try_from(attempt_number.max(1) - 1).unwrap_or(usize::MAX);
    let Some(base) = waits.get(retries_done) else {
        let disable = disables_when_exhausted(kind)
            .then(|| format!("retries exhausted: last attempt {error}"));
        return failed(disable);
    };
    let planned = jittered(*base, jitter);
    let wait = match retry_after {
        Some(asked) if matches!(status, Some(429) | Some(503)) => asked.min(planned * 2),
        _ => planned,
    };
    Decision {
        next: Next::Retry(wait),
        disable: None,
    }
}

/// The decision for a one-off attempt (manual retry, verification): success or failure, no
/// automatic retries and no disabling, whatever the receiver answered.
pub fn decide_single(result: &AttemptResult) -> Decision {
    match result {
        AttemptResult::Succeeded => Decision {
            next: Next::Succeeded,
            disable: None,
        },
        AttemptResult::Failed { .. } => failed(None),
    }
}

/// `base` stretched by `jitter` (clamped to ±10 %), rounded to the millisecond: platform time
/// counts milliseconds, and whole milliseconds keep the arithmetic exact.
fn jittered(base: Duration, jitter: f64) -> Duration {
    let factor = 1.0 + jitter.clamp(-MAX_JITTER, MAX_JITTER);
    Duration::from_millis((base.as_millis() as f64 * factor).round() as u64)
}

fn failed(disable: Option<String>) -> Decision {
    Decision {
        next: Next::Failed,
        disable,
    }
}

/// A uniformly random jitter in `[-0.1, 0.1]`, so that receivers that failed together are not
/// retried in lockstep.
pub fn random_jitter() -> f64 {
    rand::thread_rng().gen_range(-MAX_JITTER..=MAX_JITTER)
}

/// Parses a `Retry-After` value: delay seconds, or an HTTP date compared with `now` (real
/// time: the date comes from the receiver's clock). A date in the past means "now".
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = parse_http_date(value)?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), plus the obsolete RFC 850 and asctime forms
/// that RFC 9110 says recipients must accept.
fn parse_http_date(value: &str) -> Option<SystemTime> {
    use chrono::{NaiveDateTime, TimeZone, Utc};
    let naive = [
        "%a, %d %b %Y %H:%M:%S GMT",
        "%A, %d-%b-%y %H:%M:%S GMT",
        "%a %b %e %H:%M:%S %Y",
    ]
    .iter()
    .find_map(|format| NaiveDateTime::parse_from_str(value, format).ok())?;
    let at = Utc.from_utc_datetime(&naive);
    let millis = u64::try_from(at.timestamp_millis()).ok()?;
    Some(SystemTime::UNIX_EPOCH + Duration::from_millis(millis))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http(status: u16) -> AttemptResult {
        AttemptResult::Failed {
            status: Some(status),
            error: format!("HTTP {status}"),
        }
    }

    fn network() -> AttemptResult {
        AttemptResult::Failed {
            status: None,
            error: "connection refused".to_string(),
        }
    }

    /// Walks a whole road with one result and returns the waits and the final decision.
    fn road(
        kind: WebhookKind,
        purpose: DeliveryPurpose,
        result: &AttemptResult,
        jitter: f64,
    ) -> (Vec<Duration>, Decision) {
        let mut waits = Vec::new();
        for attempt in 1.. {
            let decision = decide(kind, purpose, attempt, result, None, jitter);
            match decision.next {
                Next::Retry(wait) => {
                    assert_eq!(decision.disable, None);
                    waits.push(wait);
                }
                _ => return (waits, decision),
            }
            assert!(attempt < 100, "the road never ends");
        }
        unreachable!()
    }

    fn secs_list(waits: &[Duration]) -> Vec<u64> {
        waits.iter().map(|w| w.as_secs()).collect()
    }

    #[test]
    fn scheduled_retries_five_times_then_disables() {
        let (waits, last) = road(
            WebhookKind::Scheduled,
            DeliveryPurpose::Event,
            &http(500),
            0.0,
        );
        assert_eq!(secs_list(&waits), [20, 40, 80, 160, 300]);
        assert!(waits.iter().sum::<Duration>() <= Duration::from_secs(600));
        assert_eq!(last.next, Next::Failed);
        assert_eq!(
            last.disable.as_deref(),
            Some("retries exhausted: last attempt HTTP 500")
        );
    }

    #[test]
    fn dynamic_and_event_based_retry_six_times_doubling_then_disable() {
        for kind in [WebhookKind::Dynamic, WebhookKind::EventBased] {
            let (waits, last) = road(kind, DeliveryPurpose::Event, &network(), 0.0);
            assert_eq!(secs_list(&waits), [10, 20, 40, 80, 160, 320], "{kind:?}");
            assert_eq!(last.next, Next::Failed);
            assert_eq!(
                last.disable.as_deref(),
                Some("retries exhausted: last attempt connection refused")
            );
        }
    }

    #[test]
    fn vehicle_state_retries_three_times_then_drops_without_disabling() {
        let (waits, last) = road(
            WebhookKind::VehicleState,
            DeliveryPurpose::Event,
            &http(503),
            0.0,
        );
        assert_eq!(secs_list(&waits), [25, 50, 100]);
        assert_eq!(
            last,
            Decision {
                next: Next::Failed,
                disable: None
            }
        );
    }

    #[test]
    fn test_payloads_take_the_road_of_their_kind() {
        for kind in [
            WebhookKind::Scheduled,
            WebhookKind::Dynamic,
            WebhookKind::EventBased,
            WebhookKind::VehicleState,
        ] {
            assert_eq!(
                road(kind, DeliveryPurpose::Test, &http(500), 0.0),
                road(kind, DeliveryPurpose::Event, &http(500), 0.0),
                "{kind:?}"
            );
        }
    }

    #[test]
    fn verify_never_retries_and_never_disables() {
        for kind in [WebhookKind::Scheduled, WebhookKind::VehicleState] {
            for result in [http(500), http(410), network()] {
                let decision = decide(kind, DeliveryPurpose::Verify, 1, &result, None, 0.0);
                assert_eq!(
                    decision,
                    Decision {
                        next: Next::Failed,
                        disable: None
                    }
                );
            }
        }
    }

    #[test]
    fn gone_disables_at_once_for_every_kind() {
        for kind in [
            WebhookKind::Scheduled,
            WebhookKind::Dynamic,
            WebhookKind::EventBased,
            WebhookKind::VehicleState,
        ] {
            for purpose in [DeliveryPurpose::Event, DeliveryPurpose::Test] {
                let decision = decide(kind, purpose, 1, &http(410), None, 0.0);
                assert_eq!(decision.next, Next::Failed);
                assert_eq!(
                    decision.disable.as_deref(),
                    Some("callback answered 410 Gone")
                );
            }
        }
    }

    #[test]
    fn success_succeeds_on_any_attempt() {
        for attempt in [1, 3, 7] {
            let decision = decide(
                WebhookKind::Scheduled,
                DeliveryPurpose::Event,
                attempt,
                &AttemptResult::Succeeded,
                None,
                0.0,
            );
            assert_eq!(
                decision,
                Decision {
                    next: Next::Succeeded,
                    disable: None
                }
            );
        }
    }

    #[test]
    fn jitter_stays_within_ten_percent() {
        for kind in [
            WebhookKind::Scheduled,
            WebhookKind::Dynamic,
            WebhookKind::VehicleState,
        ] {
            let (low, _) = road(kind, DeliveryPurpose::Event, &http(500), -0.1);
            let (high, _) = road(kind, DeliveryPurpose::Event, &http(500), 0.1);
            for ((lo, hi), base) in low.iter().zip(&high).zip(retry_waits(kind)) {
                assert_eq!(lo.as_millis(), base.as_millis() * 9 / 10);
                assert_eq!(hi.as_millis(), base.as_millis() * 11 / 10);
            }
            // Out-of-range jitter is clamped, not trusted.
            let (wild, _) = road(kind, DeliveryPurpose::Event, &http(500), 5.0);
            assert_eq!(wild, high);
        }
        for _ in 0..1000 {
            let j = random_jitter();
            assert!((-0.1..=0.1).contains(&j), "{j}");
        }
    }

    #[test]
    fn retry_after_is_honoured_on_429_and_503_up_to_twice_the_plan() {
        let kind = WebhookKind::Scheduled; // first planned wait 20 s
        let decide_with = |status, after, jitter| {
            decide(
                kind,
                DeliveryPurpose::Event,
                1,
                &http(status),
                Some(Duration::from_secs(after)),
                jitter,
            )
            .next
        };
        assert_eq!(
            decide_with(429, 30, 0.0),
            Next::Retry(Duration::from_secs(30))
        );
        assert_eq!(
            decide_with(503, 5, 0.0),
            Next::Retry(Duration::from_secs(5))
        );
        assert_eq!(
            decide_with(429, 3600, 0.0),
            Next::Retry(Duration::from_secs(40))
        );
        assert_eq!(
            decide_with(503, 3600, 0.1),
            Next::Retry(Duration::from_secs(44))
        );
        assert_eq!(
            decide_with(503, 3600, -0.1),
            Next::Retry(Duration::from_secs(36))
        );
        // Other statuses keep the plan.
        assert_eq!(
            decide_with(500, 30, 0.0),
            Next::Retry(Duration::from_secs(20))
        );
        assert_eq!(
            decide_with(404, 5, 0.0),
            Next::Retry(Duration::from_secs(20))
        );
    }

    #[test]
    fn a_single_attempt_never_retries_or_disables() {
        assert_eq!(
            decide_single(&http(410)),
            Decision {
                next: Next::Failed,
                disable: None
            }
        );
        assert_eq!(
            decide_single(&network()),
            Decision {
                next: Next::Failed,
                disable: None
            }
        );
        assert_eq!(
            decide_single(&AttemptResult::Succeeded),
            Decision {
                next: Next::Succeeded,
                disable: None
            }
        );
    }

    #[test]
    fn parses_retry_after_seconds_and_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777); // Sun, 06 Nov 1994 08:49:37 GMT
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:50:07 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Sunday, 06-Nov-94 08:50:37 GMT", now),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            parse_retry_after("Sun Nov  6 08:49:47 1994", now),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-5", now), None);
    }
}
