//! RFC 3339 times for reports and audit trails: always UTC, always six
//! fractional digits (the log records microseconds), so output is stable
//! byte for byte.

use backchannel_eventlog::RecordedAt;

const MICROS_PER_SECOND: i64 = 1_000_000;
const SECONDS_PER_DAY: i64 = 86_400;

/// `2025-03-01T09:30:00.000000Z`.
pub fn format_rfc3339(at: RecordedAt) -> String {
    let micros = at.as_micros();
    let seconds = micros.div_euclid(MICROS_PER_SECOND);
    let fraction = micros.rem_euclid(MICROS_PER_SECOND);
    let days = seconds.div_euclid(SECONDS_PER_DAY);
    let second_of_day = seconds.rem_euclid(SECONDS_PER_DAY);
    let (year, month, day) = civil_from_days(days);
    let (hour, minute, second) = (
        second_of_day / 3600,
        second_of_day / 60 % 60,
        second_of_day % 60,
    );
    if !(0..=9999).contains(&year) {
        return format!(
            "{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}.{fraction:06}Z"
        );
    }
    // Every timestamp a server renders takes this path: digits written into
    // place (a page of 50 conversations renders 50 of them).
    let mut text = *b"0000-00-00T00:00:00.000000Z";
    for (range, value) in [
        (0..4, year),
        (5..7, month),
        (8..10, day),
        (11..13, hour),
        (14..16, minute),
        (17..19, second),
        (20..26, fraction),
    ] {
        let mut value = value;
        for digit in text[range].iter_mut().rev() {
            *digit = b'0' + (value % 10) as u8;
            value /= 10;
        }
    }
    text.iter().map(|&b| char::from(b)).collect()
}

/// The input was not an RFC 3339 date-time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{input:?} is not an RFC 3339 time (expected e.g. 2025-03-01T09:30:00Z or 2025-03-01T09:30:00.5+01:00)"
)]
pub struct TimeParseError {
    pub input: String,
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`; a lowercase `t`/`z`
/// or a space for `T` are accepted too. Fractions beyond microseconds are cut.
pub fn parse_rfc3339(input: &str) -> Result<RecordedAt, TimeParseError> {
    parse(input.trim()).ok_or_else(|| TimeParseError {
        input: input.to_owned(),
    })
}

fn parse(s: &str) -> Option<RecordedAt> {
    let b = s.as_bytes();
    let num = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = s.get(range)?;
        if part.bytes().all(|c| c.is_ascii_digit()) {
            part.parse().ok()
        } else {
            None
        }
    };
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut rest = &s[19..];
    let mut micros = 0i64;
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let kept = &fraction[..digits.min(6)];
        micros = kept.parse::<i64>().ok()? * 10i64.pow(6 - kept.len() as u32);
        rest = &fraction[digits..];
    }
    let offset_seconds = match rest {
        "Z" | "z" => 0,
        _ => {
            let rb = rest.as_bytes();
            if rb.len() != 6 || rb[3] != b':' {
                return None;
            }
            let sign = match rb[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let hours: i64 = rest.get(1..3)?.parse().ok()?;
            let minutes: i64 = rest.get(4..6)?.parse().ok()?;
            if hours > 23 || minutes > 59 {
                return None;
            }
            sign * (hours * 3600 + minutes * 60)
        }
    };
    let days = days_from_civil(year, month, day);
    let seconds = days * SECONDS_PER_DAY + hour * 3600 + minute * 60 + second - offset_seconds;
    Some(RecordedAt::from_micros(
        seconds
            .checked_mul(MICROS_PER_SECOND)?
            .checked_add(micros)?,
    ))
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expect: Option<&str>) {
        let got = parse_rfc3339(input).ok().map(format_rfc3339);
        assert_eq!(got.as_deref(), expect, "{input}");
    }

    /// The digits written into place agree with `format!` everywhere.
    #[test]
    fn formatting_agrees_with_the_plain_rendering() {
        let reference = |at: RecordedAt| {
            let micros = at.as_micros();
            let seconds = micros.div_euclid(MICROS_PER_SECOND);
            let fraction = micros.rem_euclid(MICROS_PER_SECOND);
            let s = seconds.rem_euclid(SECONDS_PER_DAY);
            let (year, month, day) = civil_from_days(seconds.div_euclid(SECONDS_PER_DAY));
            format!(
                "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{fraction:06}Z",
                s / 3600,
                s / 60 % 60,
                s % 60
            )
        };
        let mut micros: i64 = -62_167_219_200_000_000 - 5; // just before year 0
        let step = 7_919_876_543_211; // ~92 days and an odd fraction
        while micros < 253_402_300_800_000_000 + step {
            let at = RecordedAt::from_micros(micros);
            assert_eq!(format_rfc3339(at), reference(at), "{micros}");
            micros += step;
        }
        for micros in [i64::MIN, i64::MIN + 1, -1, 0, 1, i64::MAX - 1, i64::MAX] {
            let at = RecordedAt::from_micros(micros);
            assert_eq!(format_rfc3339(at), reference(at), "{micros}");
        }
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
        check("2025-02-29T00:00:00Z", None);
        check("2025-03-01", None);
        check("yesterday", None);
        check("2025-03-01T09:30:00", None);
        check("2025-13-01T09:30:00Z", None);
    }

    #[test]
    fn every_day_round_trips() {
        for days in -800_000..800_000 {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }
}
