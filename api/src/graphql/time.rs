//! `DateTime`: an RFC 3339 UTC timestamp with microseconds, e.g.
//! `2025-01-31T09:30:00.000000Z`, rendered from the log's `RecordedAt`.

use async_graphql::{InputValueError, InputValueResult, Scalar, ScalarType, Value};
use backchannel_eventlog::RecordedAt;
use backchannel_projections::time::format_rfc3339 as rfc3339;

/// A point in time, UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DateTime(pub RecordedAt);

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

    /// A time outside the years 0000–9999 (only a forged log holds one)
    /// renders as null, logged, rather than as a string that is not RFC 3339.
    fn to_value(&self) -> Value {
        match rfc3339(self.0) {
            Ok(text) => Value::String(text),
            Err(err) => {
                tracing::error!(%err, "a DateTime cannot be rendered");
                Value::Null
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(micros: i64, expect: &str) {
        let value = DateTime(RecordedAt::from_micros(micros)).to_value();
        assert_eq!(value, Value::String(expect.to_owned()));
    }

    #[test]
    fn timestamps_render_as_rfc3339_utc() {
        check(0, "1970-01-01T00:00:00.000000Z");
        check(951_782_400_000_001, "2000-02-29T00:00:00.000001Z");
        check(1_735_689_599_999_999, "2024-12-31T23:59:59.999999Z");
        check(-1, "1969-12-31T23:59:59.999999Z");
        assert_eq!(
            DateTime(RecordedAt::from_micros(i64::MAX)).to_value(),
            Value::Null
        );
    }
}
