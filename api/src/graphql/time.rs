//! `DateTime`: an RFC 3339 UTC timestamp with microseconds, e.g.
//! `2025-01-31T09:30:00.000000Z`, rendered from the log's `RecordedAt`.

use async_graphql::{InputValueError, InputValueResult, Scalar, ScalarType, Value};
use backchannel_eventlog::RecordedAt;

/// A point in time, UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateTime(pub RecordedAt);

impl From<RecordedAt> for DateTime {
    fn from(at: RecordedAt) -> Self {
        DateTime(at)
    }
}

#[Scalar(name = "DateTime")]
impl ScalarType for DateTime {
    fn parse(value: Value) -> InputValueResult<Self> {
        Err(InputValueError::custom(format!(
            "DateTime is output only, got {value}"
        )))
    }

    fn to_value(&self) -> Value {
        Value::String(rfc3339(self.0))
    }
}

/// Formats microseconds since the epoch as RFC 3339 (proleptic Gregorian, UTC).
pub fn rfc3339(at: RecordedAt) -> String {
    let micros = at.as_micros();
    let secs = micros.div_euclid(1_000_000);
    let frac = micros.rem_euclid(1_000_000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{frac:06}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

/// Howard Hinnant's `civil_from_days`: days since 1970-01-01 to (y, m, d).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(micros: i64, expect: &str) {
        assert_eq!(rfc3339(RecordedAt::from_micros(micros)), expect);
    }

    #[test]
    fn timestamps_render_as_rfc3339_utc() {
        check(0, "1970-01-01T00:00:00.000000Z");
        check(951_782_400_000_001, "2000-02-29T00:00:00.000001Z");
        check(1_735_689_599_999_999, "2024-12-31T23:59:59.999999Z");
        check(-1, "1969-12-31T23:59:59.999999Z");
    }
}
