//! RFC 3339 times for reports and audit trails, through `jiff`: always UTC,
//! always six fractional digits (the log records microseconds), so output is
//! stable byte for byte. RFC 3339 writes four-digit years, so a time outside
//! the years 0000–9999 is an error on both sides, never a wider rendering
//! (jiff's own range ends 26 hours earlier, at 9999-12-30T22:00Z, so that
//! any offset can apply; the same error covers those hours).

use backchannel_eventlog::RecordedAt;
use jiff::Timestamp;
use jiff::fmt::temporal::DateTimePrinter;

/// 0000-01-01T00:00:00Z in microseconds; jiff bounds the other end.
const FIRST: i64 = -62_167_219_200_000_000;

/// The time is outside the years RFC 3339 can write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the time {micros} µs since 1970 is outside the years 0000–9999 that RFC 3339 can write")]
pub struct TimeRangeError {
    pub micros: i64,
}

/// `2025-03-01T09:30:00.000000Z`.
pub fn format_rfc3339(at: RecordedAt) -> Result<String, TimeRangeError> {
    let micros = at.as_micros();
    let error = TimeRangeError { micros };
    if micros < FIRST {
        return Err(error);
    }
    let at = Timestamp::from_microsecond(micros).map_err(|_| error)?;
    Ok(DateTimePrinter::new()
        .precision(Some(6))
        .timestamp_to_string(&at))
}

/// The input was not an RFC 3339 date-time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{input:?} is not an RFC 3339 time between the years 0000 and 9999 (expected e.g. 2025-03-01T09:30:00Z or 2025-03-01T09:30:00.5+01:00)"
)]
pub struct TimeParseError {
    pub input: String,
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`; a lowercase `t`/`z`
/// or a space for `T` are accepted too. Fractions beyond microseconds (up to
/// nanoseconds) are cut.
pub fn parse_rfc3339(input: &str) -> Result<RecordedAt, TimeParseError> {
    let error = || TimeParseError {
        input: input.to_owned(),
    };
    let at: Timestamp = input.trim().parse().map_err(|_| error())?;
    let micros = i64::try_from(at.as_nanosecond().div_euclid(1000)).map_err(|_| error())?;
    if micros < FIRST {
        return Err(error());
    }
    Ok(RecordedAt::from_micros(micros))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expect: Option<&str>) {
        let got = parse_rfc3339(input)
            .ok()
            .map(|at| format_rfc3339(at).unwrap());
        assert_eq!(got.as_deref(), expect, "{input}");
    }

    #[test]
    fn times_parse_and_format_in_utc() {
        check("1970-01-01T00:00:00Z", Some("1970-01-01T00:00:00.000000Z"));
        check("2025-03-01T09:30:00Z", Some("2025-03-01T09:30:00.000000Z"));
        check(
            "2024-02-29T23:59:59.1234567Z",
            Some("2024-02-29T23:59:59.123456Z"),
        );
        check(
            "2025-03-01T10:30:00+01:00",
            Some("2025-03-01T09:30:00.000000Z"),
        );
        check(
            "1969-12-31T23:59:59.5Z",
            Some("1969-12-31T23:59:59.500000Z"),
        );
        check(
            "1969-12-31T23:59:59.9999999Z",
            Some("1969-12-31T23:59:59.999999Z"),
        );
        check("2025-03-01t09:30:00z", Some("2025-03-01T09:30:00.000000Z"));
        check("2025-03-01 09:30:00Z", Some("2025-03-01T09:30:00.000000Z"));
        check("0000-01-01T00:00:00Z", Some("0000-01-01T00:00:00.000000Z"));
        check(
            "9999-12-30T21:59:59.999999Z",
            Some("9999-12-30T21:59:59.999999Z"),
        );
        check("9999-12-31T23:59:59Z", None);
        check("2025-02-29T00:00:00Z", None);
        check("2025-03-01", None);
        check("yesterday", None);
        check("2025-03-01T09:30:00", None);
        check("2025-13-01T09:30:00Z", None);
        check("-000001-12-31T00:00:00Z", None);
        check("0000-01-01T00:30:00+01:00", None);
    }

    /// The rendering every goldens file depends on, at the edges of the
    /// calendar and of the range.
    #[test]
    fn formatting_is_fixed_width_utc() {
        let at = |micros| format_rfc3339(RecordedAt::from_micros(micros));
        assert_eq!(at(0).unwrap(), "1970-01-01T00:00:00.000000Z");
        assert_eq!(at(-1).unwrap(), "1969-12-31T23:59:59.999999Z");
        assert_eq!(
            at(951_782_400_000_001).unwrap(),
            "2000-02-29T00:00:00.000001Z"
        );
        assert_eq!(at(FIRST).unwrap(), "0000-01-01T00:00:00.000000Z");
        let last_day = 253_402_214_400_000_000; // 9999-12-31T00:00:00Z
        let jiffs_last = 253_402_207_199_999_999; // 9999-12-30T21:59:59.999999Z
        assert_eq!(at(jiffs_last).unwrap(), "9999-12-30T21:59:59.999999Z");
        for micros in [FIRST - 1, last_day, i64::MIN, i64::MAX] {
            let err = at(micros).unwrap_err();
            assert_eq!(err, TimeRangeError { micros });
            assert!(err.to_string().contains("0000–9999"), "{err}");
        }
    }
}
