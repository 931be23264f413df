//! Cadence boundaries of scheduled webhooks: pure UTC arithmetic on epoch milliseconds.
//!
//! A scheduled webhook is delivered at each boundary of its cadence. The boundaries are:
//!
//! - `minutely` N: instants whose minutes since 00:00 UTC of their day are a multiple of N. The
//!   grid restarts every day at 00:00, so an N that does not divide 1440 gives the day a
//!   shorter last slot (N = 7: …, 23:55, then 00:00).
//! - `hourly` N < 24: HH:00 where HH is a multiple of N, the grid restarting every day at 00:00
//!   (N = 5: 00:00, 05:00, …, 20:00, then 00:00). `hourly` N >= 24: the instants whose hours
//!   since the Unix epoch are a multiple of N.
//! - `daily` N at `time` T: T on the days whose index since 1970-01-01 is a multiple of N.
//! - `weekly` N on ISO weekday D at T: weekday D at T of the Monday-based weeks whose index,
//!   counted from Monday 1970-01-05, is a multiple of N.
//! - `monthly` N on day D at T: day min(D, last day of the month) at T of the months whose index
//!   since 1970-01 is a multiple of N.
//!
//! T defaults to 00:00, D to 1 (Monday for weekly). Every grid is anchored on the calendar or on
//! the Unix epoch, never on when the webhook was created or last delivered: a restarted process,
//! a second node, or a webhook recreated from a backup all compute the same boundaries from the
//! schedule alone, so they agree on what is due without sharing any state.
//!
//! Every function is O(1): the boundary of the period holding the instant and its neighbour are
//! computed directly. Instants outside years 1 to 9999 are clamped into that range; when the
//! clamped answer would break the contract, the result saturates to `i64::MIN` / `i64::MAX`.

use chrono::{DateTime, Datelike, NaiveDate};

use crate::clock::Millis;
use crate::kinds::{Frequency, Schedule};

const MINUTE_MS: i64 = 60_000;
const HOUR_MS: i64 = 60 * MINUTE_MS;
const DAY_MS: i64 = 24 * HOUR_MS;
/// 1970-01-05, the Monday that starts week 0, in days since the epoch.
const FIRST_MONDAY_DAY: i64 = 4;
/// 0001-01-01T00:00:00.000Z: earlier instants are clamped to it.
const T_MIN: Millis = -62_135_596_800_000;
/// 9999-12-31T23:59:59.999Z: later instants are clamped to it.
const T_MAX: Millis = 253_402_300_799_999;
/// The largest monthly interval honoured (10 000 years); larger ones behave like it.
const MAX_MONTHLY_INTERVAL: i64 = 120_000;

/// The first boundary of `schedule` strictly after `after`.
pub fn next_boundary(schedule: &Schedule, after: Millis) -> Millis {
    let (_, next) = bracket(schedule, after.clamp(T_MIN, T_MAX));
    if next > after {
        next
    } else {
        Millis::MAX
    }
}

/// The latest boundary of `schedule` at or before `at_or_before`.
pub fn last_boundary(schedule: &Schedule, at_or_before: Millis) -> Millis {
    let (last, _) = bracket(schedule, at_or_before.clamp(T_MIN, T_MAX));
    if last <= at_or_before {
        last
    } else {
        Millis::MIN
    }
}

/// The first boundary delivered to a vehicle subscribed at `subscribed_at` (`next_boundary`).
///
/// A subscription made exactly at a boundary does not get that boundary: its batch may already
/// be under way (pages of vehicles being enqueued since that very millisecond), so whether the
/// new vehicle were included would depend on timing; it gets the next boundary instead.
pub fn first_delivery_after_subscribe(schedule: &Schedule, subscribed_at: Millis) -> Millis {
    next_boundary(schedule, subscribed_at)
}

/// `(last, next)` with `last <= t < next`, both boundaries, for `t` within `T_MIN..=T_MAX`.
fn bracket(schedule: &Schedule, t: Millis) -> (Millis, Millis) {
    let n = i64::from(schedule.interval.max(1));
    match schedule.frequency {
        Frequency::Minutely => day_grid(t, MINUTE_MS, n),
        Frequency::Hourly if n < 24 => day_grid(t, HOUR_MS, n),
        Frequency::Hourly => periodic(
            t,
            n,
            |t| t.div_euclid(HOUR_MS),
            |k| k.saturating_mul(HOUR_MS),
        ),
        Frequency::Daily => {
            let time = time_of_day(schedule);
            periodic(
                t,
                n,
                |t| t.div_euclid(DAY_MS),
                |k| k.saturating_mul(DAY_MS).saturating_add(time),
            )
        }
        Frequency::Weekly => {
            let time = time_of_day(schedule);
            let weekday = i64::from(schedule.day.unwrap_or(1).clamp(1, 7));
            periodic(
                t,
                n,
                |t| (t.div_euclid(DAY_MS) - FIRST_MONDAY_DAY).div_euclid(7),
                |k| {
                    let day = k
                        .saturating_mul(7)
                        .saturating_add(FIRST_MONDAY_DAY + weekday - 1);
                    day.saturating_mul(DAY_MS).saturating_add(time)
                },
            )
        }
        Frequency::Monthly => {
            let time = time_of_day(schedule);
            let day = i64::from(schedule.day.unwrap_or(1).clamp(1, 31));
            periodic(t, n.min(MAX_MONTHLY_INTERVAL), month_index, |k| {
                let (start, len) = month_days(k);
                (start + day.min(len) - 1) * DAY_MS + time
            })
        }
    }
}

/// A grid of `unit` slots, every `n`th one, restarting at 00:00 UTC each day.
fn day_grid(t: Millis, unit: i64, n: i64) -> (Millis, Millis) {
    let day_start = t.div_euclid(DAY_MS) * DAY_MS;
    let slot = ((t - day_start) / unit) / n * n;
    let next_slot = slot + n;
    let next = if next_slot < DAY_MS / unit {
        day_start + next_slot * unit
    } else {
        day_start + DAY_MS
    };
    (day_start + slot * unit, next)
}

/// One boundary per period whose index is a multiple of `n`: `boundary(k)` must lie within
/// period `k` (`period(boundary(k)) == k`) and grow with `k`.
fn periodic(
    t: Millis,
    n: i64,
    period: impl Fn(Millis) -> i64,
    boundary: impl Fn(i64) -> Millis,
) -> (Millis, Millis) {
    let k = period(t).div_euclid(n) * n;
    let here = boundary(k);
    if here <= t {
        (here, boundary(k.saturating_add(n)))
    } else {
        (boundary(k.saturating_sub(n)), here)
    }
}

/// The schedule's `HH:MM` as milliseconds after midnight; 00:00 when absent or unreadable.
fn time_of_day(schedule: &Schedule) -> i64 {
    let Some((h, m)) = schedule.time.as_deref().and_then(|s| s.split_once(':')) else {
        return 0;
    };
    match (h.trim().parse::<i64>(), m.trim().parse::<i64>()) {
        (Ok(h), Ok(m)) => h.clamp(0, 23) * HOUR_MS + m.clamp(0, 59) * MINUTE_MS,
        _ => 0,
    }
}

/// Months since 1970-01 of the UTC month holding `t`.
fn month_index(t: Millis) -> i64 {
    match DateTime::from_timestamp_millis(t) {
        Some(dt) => (i64::from(dt.year()) - 1970) * 12 + i64::from(dt.month0()),
        // Unreachable for clamped instants; an average month keeps it total.
        None => t.div_euclid(DAY_MS * 30),
    }
}

/// First day (days since the epoch) and length in days of month `k` since 1970-01.
fn month_days(k: i64) -> (i64, i64) {
    let first = |k: i64| -> i64 {
        let year = i32::try_from(1970 + k.div_euclid(12)).unwrap_or(i32::MAX);
        let month = k.rem_euclid(12) as u32 + 1;
        match NaiveDate::from_ymd_opt(year, month, 1) {
            Some(date) => date.signed_duration_since(NaiveDate::default()).num_days(),
            // Unreachable for the clamped range; an average month keeps it total.
            None => k.saturating_mul(30),
        }
    };
    let start = first(k);
    (start, (first(k.saturating_add(1)) - start).clamp(28, 31))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Timelike;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    fn ms(iso: &str) -> Millis {
        DateTime::parse_from_rfc3339(iso)
            .unwrap_or_else(|e| panic!("bad test time {iso}: {e}"))
            .timestamp_millis()
    }

    fn iso(t: Millis) -> String {
        DateTime::from_timestamp_millis(t)
            .map(|d| d.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
            .unwrap_or_else(|| format!("out of range {t}"))
    }

    fn sched(
        frequency: Frequency,
        interval: u32,
        day: Option<u32>,
        time: Option<&str>,
    ) -> Schedule {
        Schedule {
            frequency,
            interval,
            day,
            time: time.map(str::to_string),
        }
    }

    /// Asserts the boundaries following `from`, in order.
    fn assert_next_chain(s: &Schedule, from: &str, expected: &[&str]) {
        let mut t = ms(from);
        for want in expected {
            t = next_boundary(s, t);
            assert_eq!(iso(t), iso(ms(want)), "{s:?} after {from}");
        }
    }

    #[test]
    fn minutely_1_is_every_minute() {
        let s = sched(Frequency::Minutely, 1, None, None);
        assert_next_chain(
            &s,
            "2024-05-01T10:00:30Z",
            &["2024-05-01T10:01:00Z", "2024-05-01T10:02:00Z"],
        );
        assert_eq!(
            last_boundary(&s, ms("2024-05-01T10:00:30Z")),
            ms("2024-05-01T10:00:00Z")
        );
    }

    #[test]
    fn minutely_15_is_quarter_hours() {
        let s = sched(Frequency::Minutely, 15, None, None);
        assert_next_chain(
            &s,
            "2024-05-01T10:07:00Z",
            &[
                "2024-05-01T10:15:00Z",
                "2024-05-01T10:30:00Z",
                "2024-05-01T10:45:00Z",
                "2024-05-01T11:00:00Z",
            ],
        );
    }

    #[test]
    fn minutely_7_has_a_shorter_last_slot_and_restarts_at_midnight() {
        let s = sched(Frequency::Minutely, 7, None, None);
        // 1435 = 205 * 7 is 23:55; 1442 would be past midnight, so the day ends early.
        assert_next_chain(
            &s,
            "2024-05-01T23:50:00Z",
            &[
                "2024-05-01T23:55:00Z",
                "2024-05-02T00:00:00Z",
                "2024-05-02T00:07:00Z",
                "2024-05-02T00:14:00Z",
            ],
        );
        assert_eq!(
            last_boundary(&s, ms("2024-05-01T23:59:59.999Z")),
            ms("2024-05-01T23:55:00Z")
        );
    }

    #[test]
    fn hourly_1_subscribed_at_15_45_is_first_delivered_at_16_00() {
        let s = sched(Frequency::Hourly, 1, None, None);
        assert_eq!(
            first_delivery_after_subscribe(&s, ms("2024-09-20T15:45:00Z")),
            ms("2024-09-20T16:00:00Z")
        );
        assert_next_chain(
            &s,
            "2024-09-20T16:00:00Z",
            &["2024-09-20T17:00:00Z", "2024-09-20T18:00:00Z"],
        );
    }

    #[test]
    fn subscribed_exactly_at_a_boundary_gets_the_next_one() {
        let s = sched(Frequency::Hourly, 1, None, None);
        let at = ms("2024-09-20T16:00:00Z");
        assert_eq!(last_boundary(&s, at), at);
        assert_eq!(next_boundary(&s, at), ms("2024-09-20T17:00:00Z"));
        assert_eq!(
            first_delivery_after_subscribe(&s, at),
            ms("2024-09-20T17:00:00Z")
        );
        assert_eq!(
            first_delivery_after_subscribe(&s, at - 1),
            ms("2024-09-20T16:00:00Z")
        );
    }

    #[test]
    fn hourly_5_restarts_at_midnight() {
        let s = sched(Frequency::Hourly, 5, None, None);
        assert_next_chain(
            &s,
            "2024-05-01T16:30:00Z",
            &[
                "2024-05-01T20:00:00Z",
                "2024-05-02T00:00:00Z",
                "2024-05-02T05:00:00Z",
            ],
        );
        assert_eq!(
            last_boundary(&s, ms("2024-05-01T23:59:00Z")),
            ms("2024-05-01T20:00:00Z")
        );
    }

    #[test]
    fn hourly_48_counts_hours_since_the_epoch() {
        let s = sched(Frequency::Hourly, 48, None, None);
        // Epoch day 19723 (2024-01-01) is odd, so 48-hour boundaries fall on even days.
        assert_next_chain(
            &s,
            "2024-01-01T12:00:00Z",
            &["2024-01-02T00:00:00Z", "2024-01-04T00:00:00Z"],
        );
    }

    #[test]
    fn daily_1_at_time() {
        let s = sched(Frequency::Daily, 1, None, Some("08:30"));
        assert_next_chain(
            &s,
            "2024-05-01T09:00:00Z",
            &["2024-05-02T08:30:00Z", "2024-05-03T08:30:00Z"],
        );
        assert_eq!(
            next_boundary(&s, ms("2024-05-01T08:29:59.999Z")),
            ms("2024-05-01T08:30:00Z")
        );
        assert_eq!(
            last_boundary(&s, ms("2024-05-01T08:29:59.999Z")),
            ms("2024-04-30T08:30:00Z")
        );
    }

    #[test]
    fn daily_without_time_is_at_midnight() {
        let s = sched(Frequency::Daily, 1, None, None);
        assert_next_chain(&s, "2024-05-01T00:00:00Z", &["2024-05-02T00:00:00Z"]);
    }

    #[test]
    fn daily_2_falls_on_even_epoch_days() {
        let s = sched(Frequency::Daily, 2, None, Some("12:00"));
        // 2024-01-01 is epoch day 19723 (odd); 2024-01-02 is day 19724 (even).
        assert_eq!(ms("2024-01-02T00:00:00Z") / DAY_MS, 19_724);
        assert_next_chain(
            &s,
            "2024-01-01T00:00:00Z",
            &[
                "2024-01-02T12:00:00Z",
                "2024-01-04T12:00:00Z",
                "2024-01-06T12:00:00Z",
            ],
        );
        assert_eq!(
            last_boundary(&s, ms("2024-01-02T11:59:00Z")),
            ms("2023-12-31T12:00:00Z")
        );
    }

    #[test]
    fn weekly_1_on_friday_at_07_30() {
        let s = sched(Frequency::Weekly, 1, Some(5), Some("07:30"));
        // 2024-05-01 is a Wednesday.
        assert_next_chain(
            &s,
            "2024-05-01T12:00:00Z",
            &["2024-05-03T07:30:00Z", "2024-05-10T07:30:00Z"],
        );
        assert_eq!(
            last_boundary(&s, ms("2024-05-03T07:29:00Z")),
            ms("2024-04-26T07:30:00Z")
        );
    }

    #[test]
    fn weekly_2_on_friday_counts_weeks_from_monday_1970_01_05() {
        let s = sched(Frequency::Weekly, 2, Some(5), Some("07:30"));
        // Week of Monday 2024-04-29: (19842 - 4) / 7 = 2834, even, so its Friday is a boundary.
        assert_eq!(ms("2024-04-29T00:00:00Z") / DAY_MS, 19_842);
        assert_next_chain(
            &s,
            "2024-04-29T00:00:00Z",
            &[
                "2024-05-03T07:30:00Z",
                "2024-05-17T07:30:00Z",
                "2024-05-31T07:30:00Z",
            ],
        );
        assert_eq!(
            last_boundary(&s, ms("2024-05-16T00:00:00Z")),
            ms("2024-05-03T07:30:00Z")
        );
    }

    #[test]
    fn weekly_on_monday_by_default() {
        let s = sched(Frequency::Weekly, 1, None, None);
        assert_next_chain(
            &s,
            "2024-05-01T00:00:00Z",
            &["2024-05-06T00:00:00Z", "2024-05-13T00:00:00Z"],
        );
    }

    #[test]
    fn monthly_1_on_day_1_at_midnight() {
        let s = sched(Frequency::Monthly, 1, Some(1), None);
        assert_next_chain(
            &s,
            "2024-05-01T00:00:00Z",
            &["2024-06-01T00:00:00Z", "2024-07-01T00:00:00Z"],
        );
    }

    #[test]
    fn monthly_day_31_is_feb_29_in_a_leap_year() {
        let s = sched(Frequency::Monthly, 1, Some(31), Some("06:00"));
        assert_next_chain(
            &s,
            "2024-01-31T06:00:00Z",
            &[
                "2024-02-29T06:00:00Z",
                "2024-03-31T06:00:00Z",
                "2024-04-30T06:00:00Z",
                "2024-05-31T06:00:00Z",
            ],
        );
    }

    #[test]
    fn monthly_day_31_is_feb_28_in_a_common_year() {
        let s = sched(Frequency::Monthly, 1, Some(31), None);
        assert_next_chain(
            &s,
            "2023-02-01T00:00:00Z",
            &["2023-02-28T00:00:00Z", "2023-03-31T00:00:00Z"],
        );
        assert_eq!(
            last_boundary(&s, ms("2023-03-30T23:59:59Z")),
            ms("2023-02-28T00:00:00Z")
        );
    }

    #[test]
    fn monthly_day_31_is_april_30() {
        let s = sched(Frequency::Monthly, 1, Some(31), None);
        assert_eq!(
            next_boundary(&s, ms("2023-04-01T00:00:00Z")),
            ms("2023-04-30T00:00:00Z")
        );
        assert_eq!(
            last_boundary(&s, ms("2023-05-30T00:00:00Z")),
            ms("2023-04-30T00:00:00Z")
        );
    }

    #[test]
    fn monthly_3_falls_on_quarters_counted_from_1970_01() {
        let s = sched(Frequency::Monthly, 3, Some(15), Some("09:00"));
        // Months since 1970-01 are multiples of 3 for January, April, July, October.
        assert_next_chain(
            &s,
            "2024-02-20T00:00:00Z",
            &[
                "2024-04-15T09:00:00Z",
                "2024-07-15T09:00:00Z",
                "2024-10-15T09:00:00Z",
                "2025-01-15T09:00:00Z",
            ],
        );
        assert_eq!(
            last_boundary(&s, ms("2024-04-15T08:59:00Z")),
            ms("2024-01-15T09:00:00Z")
        );
    }

    #[test]
    fn year_end_rolls_into_january() {
        let daily = sched(Frequency::Daily, 1, None, Some("23:30"));
        assert_next_chain(&daily, "2023-12-31T23:30:00Z", &["2024-01-01T23:30:00Z"]);
        let monthly = sched(Frequency::Monthly, 1, Some(31), None);
        assert_next_chain(&monthly, "2023-12-31T00:00:00Z", &["2024-01-31T00:00:00Z"]);
        let hourly = sched(Frequency::Hourly, 1, None, None);
        assert_next_chain(&hourly, "2023-12-31T23:15:00Z", &["2024-01-01T00:00:00Z"]);
        let weekly = sched(Frequency::Weekly, 1, Some(1), None);
        assert_next_chain(&weekly, "2023-12-26T00:00:00Z", &["2024-01-01T00:00:00Z"]);
    }

    #[test]
    fn extreme_instants_never_panic_and_saturate() {
        let schedules = [
            sched(Frequency::Minutely, 7, None, None),
            sched(Frequency::Hourly, 168, None, None),
            sched(Frequency::Daily, 31, None, Some("23:59")),
            sched(Frequency::Weekly, u32::MAX, Some(9), Some("99:99")),
            sched(Frequency::Monthly, u32::MAX, Some(0), Some("garbage")),
            sched(Frequency::Monthly, 0, Some(31), None),
        ];
        for s in &schedules {
            for t in [
                Millis::MIN,
                T_MIN - 1,
                T_MIN,
                0,
                T_MAX,
                T_MAX + 1,
                Millis::MAX,
            ] {
                let last = last_boundary(s, t);
                let next = next_boundary(s, t);
                assert!(
                    (last <= t && t < next) || next == Millis::MAX,
                    "{s:?} at {t}"
                );
            }
        }
    }

    /// The boundaries straight from the definitions, checked one candidate at a time.
    fn is_boundary_by_definition(s: &Schedule, t: Millis) -> bool {
        let Some(dt) = DateTime::from_timestamp_millis(t) else {
            return false;
        };
        let n = s.interval as i64;
        let minute_of_day = i64::from(dt.hour() * 60 + dt.minute());
        let on_minute = t % MINUTE_MS == 0;
        let day = t.div_euclid(DAY_MS);
        let at_time = minute_of_day * MINUTE_MS == time_of_day(s);
        match s.frequency {
            Frequency::Minutely => on_minute && minute_of_day % n == 0,
            Frequency::Hourly if n < 24 => {
                on_minute && dt.minute() == 0 && i64::from(dt.hour()) % n == 0
            }
            Frequency::Hourly => t % HOUR_MS == 0 && (t / HOUR_MS) % n == 0,
            Frequency::Daily => on_minute && at_time && day % n == 0,
            Frequency::Weekly => {
                on_minute
                    && at_time
                    && dt.weekday().number_from_monday() == s.day.unwrap_or(1)
                    && (day - FIRST_MONDAY_DAY).div_euclid(7) % n == 0
            }
            Frequency::Monthly => {
                let date = dt.date_naive();
                let last_day = (28..=31)
                    .rev()
                    .find(|d| date.with_day(*d).is_some())
                    .unwrap_or(28);
                let months = (i64::from(dt.year()) - 1970) * 12 + i64::from(dt.month0());
                on_minute
                    && at_time
                    && date.day() == s.day.unwrap_or(1).min(last_day)
                    && months % n == 0
            }
        }
    }

    #[test]
    fn boundaries_match_a_brute_force_scan_of_the_definitions() {
        let mut rng = StdRng::seed_from_u64(42);
        for round in 0..40 {
            let (frequency, interval, step, span) = match round % 5 {
                0 => (
                    Frequency::Minutely,
                    rng.gen_range(1..=1440),
                    MINUTE_MS,
                    3 * DAY_MS,
                ),
                1 => (
                    Frequency::Hourly,
                    rng.gen_range(1..=168),
                    HOUR_MS,
                    30 * DAY_MS,
                ),
                2 => (Frequency::Daily, rng.gen_range(1..=31), MINUTE_MS, 0),
                3 => (Frequency::Weekly, rng.gen_range(1..=52), MINUTE_MS, 0),
                _ => (Frequency::Monthly, rng.gen_range(1..=12), MINUTE_MS, 0),
            };
            let s = Schedule {
                frequency,
                interval,
                day: match frequency {
                    Frequency::Weekly => Some(rng.gen_range(1..=7)),
                    Frequency::Monthly => Some(rng.gen_range(28..=31)),
                    _ => None,
                },
                time: match frequency {
                    Frequency::Minutely | Frequency::Hourly => None,
                    _ => Some(format!(
                        "{:02}:{:02}",
                        rng.gen_range(0..24),
                        rng.gen_range(0..60)
                    )),
                },
            };
            let start = ms("2023-06-01T00:00:00Z") + rng.gen_range(0..400) * DAY_MS;
            // Daily, weekly, monthly: one candidate per day, at the schedule's time, for years.
            let (step, end) = if span == 0 {
                (DAY_MS, start + 3 * 366 * DAY_MS)
            } else {
                (step, start + span)
            };
            let first = start + if span == 0 { time_of_day(&s) } else { 0 };
            let expected: Vec<Millis> = (0..)
                .map(|i| first + i * step)
                .take_while(|t| *t < end)
                .filter(|t| is_boundary_by_definition(&s, *t))
                .collect();
            let mut found = Vec::new();
            let mut t = next_boundary(&s, start - 1);
            while t < end {
                found.push(t);
                t = next_boundary(&s, t);
            }
            assert_eq!(
                found.iter().map(|t| iso(*t)).collect::<Vec<_>>(),
                expected.iter().map(|t| iso(*t)).collect::<Vec<_>>(),
                "{s:?}"
            );
        }
    }

    /// Every boundary comes from the schedule, never from when the webhook was created.
    #[test]
    fn boundaries_bracket_every_instant_for_pseudo_random_schedules() {
        let mut rng = StdRng::seed_from_u64(0x5eed_f1ee);
        let lo = ms("1970-01-01T00:00:00Z");
        let hi = ms("9999-12-31T23:59:59.999Z");
        for _ in 0..5_000 {
            let frequency = match rng.gen_range(0..5) {
                0 => Frequency::Minutely,
                1 => Frequency::Hourly,
                2 => Frequency::Daily,
                3 => Frequency::Weekly,
                _ => Frequency::Monthly,
            };
            let interval = match frequency {
                Frequency::Minutely => rng.gen_range(1..=1440),
                Frequency::Hourly => rng.gen_range(1..=168),
                Frequency::Daily => rng.gen_range(1..=31),
                Frequency::Weekly => rng.gen_range(1..=52),
                Frequency::Monthly => rng.gen_range(1..=12),
            };
            let day = match frequency {
                Frequency::Weekly => Some(rng.gen_range(1..=7)),
                Frequency::Monthly => Some(rng.gen_range(1..=31)),
                _ => None,
            };
            let time = match frequency {
                Frequency::Daily | Frequency::Weekly | Frequency::Monthly => Some(format!(
                    "{:02}:{:02}",
                    rng.gen_range(0..24),
                    rng.gen_range(0..60)
                )),
                _ => None,
            };
            let s = Schedule {
                frequency,
                interval,
                day,
                time,
            };
            // Mix arbitrary instants with ones a millisecond around a boundary.
            let mut t = rng.gen_range(lo..=hi);
            if rng.gen_bool(0.3) {
                t = last_boundary(&s, t) + rng.gen_range(-1..=1);
            }
            let last = last_boundary(&s, t);
            let next = next_boundary(&s, t);
            assert!(last <= t, "{s:?}: last {} > t {}", iso(last), iso(t));
            assert!(t < next, "{s:?}: next {} <= t {}", iso(next), iso(t));
            assert!(next_boundary(&s, last) > t, "{s:?} at {}", iso(t));
            assert_eq!(next_boundary(&s, last), next, "{s:?} at {}", iso(t));
            assert_eq!(last_boundary(&s, next), next, "{s:?} at {}", iso(t));
            assert_eq!(last_boundary(&s, next - 1), last, "{s:?} at {}", iso(t));
            assert_eq!(first_delivery_after_subscribe(&s, t), next);
            assert_eq!(next % MINUTE_MS, 0, "{s:?}: boundaries are whole minutes");
        }
    }
}
