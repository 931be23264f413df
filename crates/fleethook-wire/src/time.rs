//! Times as the payloads write them: v2/v3 use ISO 8601 UTC with milliseconds, v4 epoch ms.

use chrono::{DateTime, NaiveDateTime, SecondsFormat, Utc};

/// Epoch milliseconds as ISO 8601 UTC with milliseconds, e.g. `2024-09-20T21:58:06.000Z`.
///
/// Out-of-range inputs clamp to chrono's limits rather than fail: a timestamp is never a
/// reason to drop a payload.
pub fn iso_millis(epoch_ms: i64) -> String {
    let at = DateTime::<Utc>::from_timestamp_millis(epoch_ms).unwrap_or(if epoch_ms < 0 {
        DateTime::<Utc>::MIN_UTC
    } else {
        DateTime::<Utc>::MAX_UTC
    });
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Parses an ISO 8601 time to epoch milliseconds: RFC 3339 with any offset, or a time without
/// offset, read as UTC (Smartcar's DTC examples mix both).
pub fn parse_iso_millis(s: &str) -> Option<i64> {
    if let Ok(at) = DateTime::parse_from_rfc3339(s) {
        return Some(at.timestamp_millis());
    }
    NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
        .ok()
        .map(|naive| naive.and_utc().timestamp_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_millis_writes_utc_with_three_fraction_digits() {
        assert_eq!(iso_millis(1_726_869_486_000), "2024-09-20T21:58:06.000Z");
        assert_eq!(iso_millis(1_726_869_486_007), "2024-09-20T21:58:06.007Z");
        assert_eq!(iso_millis(0), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn iso_times_parse_with_or_without_offset() {
        assert_eq!(
            parse_iso_millis("2024-09-20T21:58:06.000Z"),
            Some(1_726_869_486_000)
        );
        assert_eq!(
            parse_iso_millis("2024-09-20T23:58:06+02:00"),
            Some(1_726_869_486_000)
        );
        assert_eq!(
            parse_iso_millis("2024-09-20T21:58:06"),
            Some(1_726_869_486_000)
        );
        assert_eq!(parse_iso_millis("yesterday"), None);
        assert_eq!(parse_iso_millis("2024-09-20"), None);
    }

    #[test]
    fn a_parsed_time_writes_back_identically() {
        let t = 1_731_940_328_123;
        assert_eq!(parse_iso_millis(&iso_millis(t)), Some(t));
    }
}
